/*
 * TEST-ONLY shim for Wine 8.0, which has no bcryptprimitives.dll. Rust's standard library
 * imports ProcessPrng from it, so without this DLL the exe does not even load under Wine
 * ("Library bcryptprimitives.dll not found"). Real Windows (10 and later) has the DLL.
 * CI builds this with mingw and copies it into the Wine prefix's system32 only: it is never
 * part of the MSI or the zip.
 */
#include <windows.h>

/* advapi32's RtlGenRandom, exported under this name. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
