//! Hardware-hash CSV reader.
