// Image intake: untrusted bytes in, a verdict out.
//
// check_image() recognises JPEG, PNG and WebP by their content (never by a file name), walks
// the file's structure far enough to catch truncation and garbage, and returns a copy with the
// metadata removed: EXIF (which carries the GPS position), XMP, comments, text chunks,
// timestamps, thumbnails and anything after the image's end. It is a structural parser, not a
// decoder: pixels are never decompressed. What is kept is what a decoder needs to draw the
// picture, plus its colour profile:
//   JPEG  the tables, frame and scan headers and the scans; APP0 "JFIF" (less its thumbnail),
//         APP2 "ICC_PROFILE" and APP14 "Adobe" (its colour-transform flag changes how CMYK/YCCK
//         data decodes). Every other APPn (APP1 Exif/XMP, APP13 Photoshop, APP2 MPF, JFXX
//         thumbnails, ...), COM, JPGn and anything after EOI is dropped.
//   PNG   IHDR PLTE IDAT IEND and the rendering chunks tRNS cHRM gAMA iCCP sBIT sRGB cICP mDCv
//         cLLi bKGD hIST pHYs sPLT acTL fcTL fdAT; everything else (tEXt zTXt iTXt eXIf tIME
//         and private chunks) is dropped.
//   WebP  VP8X ICCP ANIM ANMF ALPH VP8 VP8L; EXIF, XMP and unknown chunks are dropped, the
//         EXIF/XMP flags in VP8X cleared and the RIFF size rewritten.
// The cleaned bytes are checked again before they are returned.
//
// Contract: pure functions of their arguments, no I/O and no shared state; call them from any
// thread. The input size is checked against the cap before anything else, and every length read
// from the input is checked against the bytes actually present before it is used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace saferlink {

// Default size cap for one image (SPEC section 3; configurable by the caller).
inline constexpr std::size_t kImageCapBytes = 8 * 1024 * 1024;
// Largest width or height accepted in any format (a decompression-bomb guard for handsets).
inline constexpr std::uint32_t kImageMaxDimension = 20000;

struct CheckedImage {
  std::string mime;                  // "image/jpeg" | "image/png" | "image/webp"
  std::string bytes;                 // the image with metadata removed: what may be stored
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  std::vector<std::string> removed;  // what was stripped, for a person: "APP1 Exif", "tEXt"
};

struct ImageError {
  std::string reason;  // one line for a person: "truncated JPEG: no end-of-image marker"
};

using ImageCheck = std::variant<CheckedImage, ImageError>;

// Checks `bytes` (at most `cap` bytes, not empty, a well-formed JPEG, PNG or WebP whose sides
// are 1..kImageMaxDimension pixels) and returns the cleaned image, or why it was refused.
ImageCheck check_image(std::string_view bytes, std::size_t cap = kImageCapBytes);

// The MIME type the leading bytes announce ("image/jpeg", "image/png", "image/webp"), judged by
// content alone; nullopt for anything else. Says nothing about whether the rest is sound.
std::optional<std::string_view> sniff_image_mime(std::string_view bytes);

// CRC-32 as PNG and zlib use it (ISO-HDLC: reflected polynomial 0xEDB88320).
std::uint32_t crc32(std::string_view bytes);

// SHA-256 of `bytes` as 64 lower-case hex digits (OpenSSL EVP). Throws std::runtime_error only
// if OpenSSL itself fails.
std::string sha256_hex(std::string_view bytes);

// True for exactly 64 lower-case hex digits: the form every SHA-256 takes in SaferLink.
bool is_sha256_hex(std::string_view text);

}  // namespace saferlink
