// Test images built byte by byte, so that each test says exactly what it feeds in. They are
// structurally real (the PNG's IDAT is a genuine zlib stream of stored blocks); the image
// checker (core/image.hpp) never decodes pixels, so the JPEG's and WebP's entropy data are
// arbitrary. Header-only: unit and integration tests include it without linking anything.
#pragma once

#include "core/image.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

namespace saferlink::test::images {

using namespace std::string_literals;

inline std::string be16(std::uint32_t v) {
  return {static_cast<char>((v >> 8) & 0xFF), static_cast<char>(v & 0xFF)};
}
inline std::string be32(std::uint32_t v) { return be16(v >> 16) + be16(v & 0xFFFF); }
inline std::string le16(std::uint32_t v) {
  return {static_cast<char>(v & 0xFF), static_cast<char>((v >> 8) & 0xFF)};
}
inline std::string le24(std::uint32_t v) {
  return le16(v & 0xFFFF) + static_cast<char>((v >> 16) & 0xFF);
}
inline std::string le32(std::uint32_t v) { return le16(v & 0xFFFF) + le16(v >> 16); }

// ---- PNG ------------------------------------------------------------------------------------

inline std::uint32_t adler32(std::string_view data) {
  std::uint32_t a = 1, b = 0;
  for (char c : data) {
    a = (a + static_cast<unsigned char>(c)) % 65521;
    b = (b + a) % 65521;
  }
  return b << 16 | a;
}

// A zlib stream holding `raw` in stored (uncompressed) deflate blocks.
inline std::string zlib_stored(std::string_view raw) {
  std::string out = "\x78\x01"s;
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min<std::size_t>(65535, raw.size() - pos);
    out.push_back(pos + n == raw.size() ? '\x01' : '\x00');
    out += le16(static_cast<std::uint32_t>(n)) + le16(~static_cast<std::uint32_t>(n) & 0xFFFF);
    out.append(raw.substr(pos, n));
    pos += n;
  } while (pos < raw.size());
  return out + be32(adler32(raw));
}

inline std::string png_chunk(std::string_view type, std::string_view data) {
  const std::string body = std::string(type) + std::string(data);
  return be32(static_cast<std::uint32_t>(data.size())) + body + be32(saferlink::crc32(body));
}

inline const std::string kPngSignature = "\x89PNG\r\n\x1a\n"s;
inline const std::string kPngText = "Location\0"s + "GPS 51.3890N 0.5050E, Pentagon Centre";

inline std::string png_ihdr(std::uint32_t width, std::uint32_t height) {
  return png_chunk("IHDR", be32(width) + be32(height) + "\x08\x02\x00\x00\x00"s);
}

inline std::string png_idat(std::uint32_t width, std::uint32_t height) {
  std::string raw;
  for (std::uint32_t y = 0; y < height; ++y) {
    raw.push_back('\0');  // filter: none
    for (std::uint32_t x = 0; x < width * 3; ++x) raw.push_back(static_cast<char>(x * 7 + y * 13));
  }
  return png_chunk("IDAT", zlib_stored(raw));
}

// An RGB PNG; with metadata it also carries a tEXt (with a place) and a tIME chunk.
inline std::string make_png(std::uint32_t width, std::uint32_t height, bool with_metadata) {
  std::string png = kPngSignature + png_ihdr(width, height);
  if (with_metadata) png += png_chunk("tEXt", kPngText);
  png += png_chunk("pHYs", be32(2835) + be32(2835) + "\x01"s);
  png += png_idat(width, height);
  if (with_metadata) png += png_chunk("tIME", "\x07\xE8\x03\x0F\x0C\x22\x38"s);
  return png + png_chunk("IEND", "");
}

// ---- JPEG -----------------------------------------------------------------------------------

inline std::string segment(unsigned char marker, std::string_view body) {
  return "\xFF"s + static_cast<char>(marker) + be16(static_cast<std::uint32_t>(body.size() + 2)) +
         std::string(body);
}

// Degrees, minutes, seconds of latitude as the GPS IFD holds them (three RATIONALs).
inline const std::string kLatitudeRationals =
    be32(51) + be32(1) + be32(23) + be32(1) + be32(2034) + be32(100);

// An Exif APP1 body: a big-endian TIFF header, IFD0 pointing to a GPS IFD with the latitude.
inline std::string exif_with_gps() {
  std::string tiff = "MM\0\x2A"s + be32(8);
  // IFD0 at 8: one entry, GPSInfo (0x8825) LONG 1 -> 26.
  tiff += be16(1) + be16(0x8825) + be16(4) + be32(1) + be32(26) + be32(0);
  // GPS IFD at 26: GPSLatitudeRef "N", GPSLatitude -> 68, GPSProcessingMethod -> 92.
  tiff += be16(3);
  tiff += be16(0x0001) + be16(2) + be32(2) + "N\0\0\0"s;
  tiff += be16(0x0002) + be16(5) + be32(3) + be32(68);
  tiff += be16(0x001B) + be16(7) + be32(11) + be32(92);
  tiff += be32(0);
  tiff += kLatitudeRationals;   // at 68
  tiff += "ASCII\0\0\0GPS\0"s;  // at 92
  return "Exif\0\0"s + tiff;
}

inline std::string jpeg_tables_and_frame(std::uint32_t width, std::uint32_t height) {
  std::string dqt = "\x00"s;
  for (int i = 1; i <= 64; ++i) dqt.push_back(static_cast<char>(i));
  std::string dht_dc = "\x00"s + "\x00\x01"s + std::string(14, '\0') + "\x00"s;
  std::string dht_ac = "\x10"s + "\x00\x01"s + std::string(14, '\0') + "\x00"s;
  std::string sof = "\x08"s + be16(height) + be16(width) + "\x01"s + "\x01\x11\x00"s;
  return segment(0xDB, dqt) + segment(0xC0, sof) + segment(0xC4, dht_dc + dht_ac);
}

inline const std::string kJfif = segment(0xE0, "JFIF\0\x01\x02\x00\x00\x01\x00\x01\x00\x00"s);
inline const std::string kComment = segment(0xFE, "Till 3, Pentagon Centre");
inline const std::string kScan = segment(0xDA, "\x01\x01\x00\x00\x3F\x00"s) +
                          "\x12\x34\xFF\x00\x56\xFF\xD0\x78\x9A\xFF\x00"s;
inline const std::string kEoi = "\xFF\xD9"s;

// SOI, APP0 JFIF, [APP1 Exif with GPS, COM], DQT, SOF0, DHT, SOS, entropy data, EOI.
inline std::string make_jpeg(bool with_metadata) {
  std::string jpeg = "\xFF\xD8"s + kJfif;
  if (with_metadata) jpeg += segment(0xE1, exif_with_gps()) + kComment;
  return jpeg + jpeg_tables_and_frame(16, 16) + kScan + kEoi;
}

// ---- WebP -----------------------------------------------------------------------------------

inline std::string riff_chunk(std::string_view fourcc, std::string_view data) {
  std::string out = std::string(fourcc) + le32(static_cast<std::uint32_t>(data.size())) +
                    std::string(data);
  if (data.size() % 2 != 0) out.push_back('\0');
  return out;
}

inline std::string riff(std::string_view chunks) {
  return "RIFF" + le32(static_cast<std::uint32_t>(4 + chunks.size())) + "WEBP" +
         std::string(chunks);
}

inline std::string vp8x(std::uint32_t flags, std::uint32_t width, std::uint32_t height) {
  return riff_chunk("VP8X", std::string(1, static_cast<char>(flags)) + "\0\0\0"s +
                                le24(width - 1) + le24(height - 1));
}

inline std::string vp8l(std::uint32_t width, std::uint32_t height) {
  return riff_chunk("VP8L",
                    "\x2F"s + le32((width - 1) | (height - 1) << 14) + "\x07\x00\x3E\x81\x55"s);
}

inline const std::string kWebpExif = riff_chunk("EXIF", exif_with_gps());
inline const std::string kWebpXmp =
    riff_chunk("XMP ", "<x:xmpmeta><exif:GPSLatitude>51,23.34N</exif:GPSLatitude></x:xmpmeta>");

// RIFF/WEBP: VP8X (with the EXIF and XMP flags when with_metadata), VP8L, [EXIF, XMP].
inline std::string make_webp(bool with_metadata) {
  const std::uint32_t flags = with_metadata ? 0x08 | 0x04 : 0x00;
  std::string chunks = vp8x(flags, 16, 8) + vp8l(16, 8);
  if (with_metadata) chunks += kWebpExif + kWebpXmp;
  return riff(chunks);
}

}  // namespace saferlink::test::images
