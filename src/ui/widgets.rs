//! Widgets shared by pages: each is a function returning `egui::Response`.
