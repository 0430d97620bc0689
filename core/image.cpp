#include "core/image.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

namespace saferlink {
namespace {

constexpr std::string_view kMimeJpeg = "image/jpeg";
constexpr std::string_view kMimePng = "image/png";
constexpr std::string_view kMimeWebp = "image/webp";
constexpr std::string_view kPngSignature{"\x89PNG\r\n\x1a\n", 8};

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t n = 0; n < 256; ++n) {
    std::uint32_t c = n;
    for (int k = 0; k < 8; ++k) c = (c & 1U) != 0 ? 0xEDB88320U ^ (c >> 1) : c >> 1;
    table[n] = c;
  }
  return table;
}
constexpr auto kCrcTable = make_crc_table();

// Readers of fixed-width integers; callers have checked that the bytes are present.
std::uint32_t u8(std::string_view s, std::size_t at) { return static_cast<unsigned char>(s[at]); }
std::uint32_t be16(std::string_view s, std::size_t at) { return u8(s, at) << 8 | u8(s, at + 1); }
std::uint32_t be32(std::string_view s, std::size_t at) {
  return be16(s, at) << 16 | be16(s, at + 2);
}
std::uint32_t le16(std::string_view s, std::size_t at) { return u8(s, at) | u8(s, at + 1) << 8; }
std::uint32_t le24(std::string_view s, std::size_t at) { return le16(s, at) | u8(s, at + 2) << 16; }
std::uint32_t le32(std::string_view s, std::size_t at) { return le24(s, at) | u8(s, at + 3) << 24; }

void put_le32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFU));
}

// "9437184" -> "9 437 184": numbers a person reads in an error.
std::string grouped(std::uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(' ');
    out.push_back(digits[i]);
  }
  return out;
}

// Untrusted text made safe to put in a message: printable ASCII, anything else as '?'.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) out.push_back(c >= 0x20 && c < 0x7F ? c : '?');
  return out;
}

std::string hex2(std::uint32_t v) {
  constexpr char kDigits[] = "0123456789ABCDEF";
  return {kDigits[(v >> 4) & 0xF], kDigits[v & 0xF]};
}

// What a parser found: dimensions, the cleaned bytes and what it left out.
struct Parsed {
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  std::string bytes;
  std::vector<std::string> removed;

  void note_removed(std::string what) {
    if (std::find(removed.begin(), removed.end(), what) == removed.end())
      removed.push_back(std::move(what));
  }
};

using Failure = std::optional<std::string>;  // nullopt: the structure is sound

// ---------------------------------------------------------------------------------------------
// JPEG (ITU T.81): SOI, then marker segments (FF xx, a 2-byte length that counts itself, the
// body); each SOS segment is followed by entropy-coded data in which FF 00 is a stuffed FF and
// FF D0..D7 are restart markers; any other marker ends the scan. EOI ends the image.

constexpr std::uint32_t kSoi = 0xD8, kEoi = 0xD9, kSos = 0xDA, kDqt = 0xDB, kDht = 0xC4,
                        kCom = 0xFE, kTem = 0x01;

bool is_sof(std::uint32_t m) {
  return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}
bool is_lossless_sof(std::uint32_t m) { return m == 0xC3 || m == 0xC7 || m == 0xCB || m == 0xCF; }
bool is_rst(std::uint32_t m) { return m >= 0xD0 && m <= 0xD7; }
bool is_app(std::uint32_t m) { return m >= 0xE0 && m <= 0xEF; }
// JPG0..JPG13: extension segments no baseline or progressive decoder reads.
bool is_jpg_extension(std::uint32_t m) { return m >= 0xF0 && m <= 0xFD; }

std::string jpeg_marker_name(std::uint32_t m) {
  std::string code = "FF" + hex2(m);
  if (is_sof(m)) return "SOF" + std::to_string(m - 0xC0) + " (" + code + ")";
  if (is_app(m)) return "APP" + std::to_string(m - 0xE0) + " (" + code + ")";
  switch (m) {
    case kSos: return "SOS (FFDA)";
    case kDqt: return "DQT (FFDB)";
    case kDht: return "DHT (FFC4)";
    case kCom: return "COM (FFFE)";
    default: return "marker " + code;
  }
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

// The fixed part of a JFIF APP0 body: "JFIF\0", version, units, densities, thumbnail size.
constexpr std::size_t kJfifFixedBytes = 14;

// APPn segments that are kept: JFIF, the ICC colour profile and Adobe's colour transform.
bool keep_app(std::uint32_t m, std::string_view body) {
  using namespace std::string_view_literals;
  if (m == 0xE0) return starts_with(body, "JFIF\0"sv) && body.size() >= kJfifFixedBytes;
  if (m == 0xE2) return starts_with(body, "ICC_PROFILE\0"sv);
  if (m == 0xEE) return starts_with(body, "Adobe"sv);
  return false;
}

std::string app_label(std::uint32_t m, std::string_view body) {
  std::string label = "APP" + std::to_string(m - 0xE0);
  std::string_view ident = body.substr(0, std::min<std::size_t>(body.size(), 40));
  ident = ident.substr(0, std::min(ident.size(), ident.find('\0')));
  if (ident == "Exif") return label + " Exif";
  if (ident == "http://ns.adobe.com/xap/1.0/") return label + " XMP";
  if (ident == "http://ns.adobe.com/xmp/extension/") return label + " XMP extension";
  if (ident == "Photoshop 3.0") return label + " Photoshop";
  if (!ident.empty() && ident.size() <= 16) return label + " " + printable(ident);
  return label;
}

Failure check_dqt(std::string_view body) {
  if (body.empty()) return "JPEG quantisation table segment is empty";
  std::size_t p = 0;
  while (p < body.size()) {
    const std::uint32_t precision = u8(body, p) >> 4, id = u8(body, p) & 0xF;
    if (precision > 1 || id > 3) return "JPEG quantisation table has an invalid precision or id";
    const std::size_t need = 1 + (precision != 0 ? 128 : 64);
    if (body.size() - p < need) return "JPEG quantisation table is cut short";
    p += need;
  }
  return std::nullopt;
}

Failure check_dht(std::string_view body) {
  if (body.empty()) return "JPEG Huffman table segment is empty";
  std::size_t p = 0;
  while (p < body.size()) {
    const std::uint32_t table_class = u8(body, p) >> 4, id = u8(body, p) & 0xF;
    if (table_class > 1 || id > 3) return "JPEG Huffman table has an invalid class or id";
    if (body.size() - p < 17) return "JPEG Huffman table is cut short";
    std::size_t symbols = 0;
    for (std::size_t i = 1; i <= 16; ++i) symbols += u8(body, p + i);
    if (symbols > 256) return "JPEG Huffman table declares more than 256 codes";
    if (body.size() - p - 17 < symbols) return "JPEG Huffman table is cut short";
    p += 17 + symbols;
  }
  return std::nullopt;
}

struct JpegFrame {
  bool seen = false;
  std::vector<std::uint32_t> component_ids;
};

Failure check_sof(std::uint32_t m, std::string_view body, JpegFrame& frame, Parsed& out) {
  if (frame.seen) return "JPEG has more than one frame header (SOFn)";
  frame.seen = true;
  if (body.size() < 6) return "JPEG frame header is too short";
  const std::uint32_t precision = u8(body, 0), components = u8(body, 5);
  const bool precision_ok = precision == 8 || precision == 12 ||
                            (is_lossless_sof(m) && precision >= 2 && precision <= 16);
  if (!precision_ok)
    return "JPEG frame header has an invalid sample precision of " + std::to_string(precision);
  if (components < 1 || components > 4)
    return "JPEG frame header names " + std::to_string(components) +
           " components (1 to 4 are supported)";
  if (body.size() != 6 + 3 * std::size_t{components})
    return "JPEG frame header length does not match its " + std::to_string(components) +
           " components";
  for (std::size_t c = 0; c < components; ++c) {
    const std::size_t at = 6 + 3 * c;
    const std::uint32_t h = u8(body, at + 1) >> 4, v = u8(body, at + 1) & 0xF;
    if (h < 1 || h > 4 || v < 1 || v > 4 || u8(body, at + 2) > 3)
      return "JPEG frame header has an invalid component";
    frame.component_ids.push_back(u8(body, at));
  }
  out.height = be16(body, 1);
  out.width = be16(body, 3);
  if (out.height == 0)
    return "JPEG frame header leaves the height to a later DNL marker, which is not supported";
  if (out.width == 0) return "JPEG frame header gives a width of 0";
  return std::nullopt;
}

Failure check_sos(std::string_view body, const JpegFrame& frame) {
  if (!frame.seen) return "JPEG has image data before its frame header (no SOFn before SOS)";
  if (body.empty()) return "JPEG scan header is empty";
  const std::uint32_t components = u8(body, 0);
  if (components < 1 || components > frame.component_ids.size())
    return "JPEG scan header names an invalid number of components";
  if (body.size() != 1 + 2 * std::size_t{components} + 3)
    return "JPEG scan header length does not match its components";
  for (std::size_t c = 0; c < components; ++c) {
    const std::uint32_t id = u8(body, 1 + 2 * c), tables = u8(body, 2 + 2 * c);
    if (std::find(frame.component_ids.begin(), frame.component_ids.end(), id) ==
        frame.component_ids.end())
      return "JPEG scan names a component the frame does not have";
    if ((tables >> 4) > 3 || (tables & 0xF) > 3) return "JPEG scan names an invalid table";
  }
  return std::nullopt;
}

Failure parse_jpeg(std::string_view in, Parsed& out) {
  const std::size_t n = in.size();
  const std::string truncated = "truncated JPEG: no end-of-image marker";
  JpegFrame frame;
  bool seen_scan = false;
  out.bytes.reserve(n);
  out.bytes.append("\xFF\xD8", 2);
  std::size_t pos = 2;
  while (true) {
    if (pos >= n) return truncated;
    if (u8(in, pos) != 0xFF)
      return "JPEG is corrupt: expected a marker at byte " + grouped(pos) + ", found garbage";
    while (pos < n && u8(in, pos) == 0xFF) ++pos;  // fill bytes before a marker
    if (pos >= n) return truncated;
    const std::uint32_t m = u8(in, pos++);

    if (m == kEoi) {
      if (!seen_scan) return "JPEG has no image data (end-of-image before any scan)";
      out.bytes.append("\xFF\xD9", 2);
      if (pos < n) out.note_removed("data after end-of-image");
      return std::nullopt;
    }
    if (m == 0x00) return "JPEG is corrupt: stray FF00 outside the image data";
    if (m == kSoi) return "JPEG is corrupt: a second start-of-image marker";
    if (is_rst(m)) return "JPEG is corrupt: restart marker outside the image data";
    if (m == kTem) {
      out.bytes.append("\xFF\x01", 2);
      continue;
    }
    if (m >= 0x02 && m <= 0xBF) return "JPEG is corrupt: reserved marker FF" + hex2(m);

    // A marker segment: length (counting itself), then the body.
    if (n - pos < 2) return "truncated JPEG: " + jpeg_marker_name(m) + " segment is cut short";
    const std::size_t length = be16(in, pos);
    if (length < 2)
      return "JPEG " + jpeg_marker_name(m) + " segment has an impossible length of " +
             std::to_string(length);
    if (n - pos < length)
      return "truncated JPEG: " + jpeg_marker_name(m) + " segment declares " + grouped(length) +
             " bytes, only " + grouped(n - pos) + " remain";
    const std::string_view segment = in.substr(pos, length);  // length bytes and body
    const std::string_view body = segment.substr(2);
    pos += length;

    Failure bad;
    if (is_sof(m)) bad = check_sof(m, body, frame, out);
    else if (m == kDqt) bad = check_dqt(body);
    else if (m == kDht) bad = check_dht(body);
    else if (m == kSos) bad = check_sos(body, frame);
    if (bad) return bad;

    if ((is_app(m) && !keep_app(m, body)) || m == kCom || is_jpg_extension(m)) {
      out.note_removed(m == kCom             ? std::string("COM")
                       : is_jpg_extension(m) ? "JPG" + std::to_string(m - 0xF0)
                                             : app_label(m, body));
      continue;
    }
    out.bytes.push_back('\xFF');
    out.bytes.push_back(static_cast<char>(m));
    if (m == 0xE0 && (body.size() > kJfifFixedBytes || u8(body, 12) != 0 || u8(body, 13) != 0)) {
      // A JFIF thumbnail may show what the cropped picture leaves out: keep the header only,
      // with a thumbnail size of 0x0.
      out.bytes.append("\x00\x10", 2);
      out.bytes.append(body.substr(0, kJfifFixedBytes - 2));
      out.bytes.append("\x00\x00", 2);
      out.note_removed("JFIF thumbnail");
      continue;
    }
    out.bytes.append(segment);

    if (m == kSos) {
      // Entropy-coded data runs to the next marker other than a stuffed FF or a restart.
      seen_scan = true;
      std::size_t p = pos;
      while (true) {
        const void* ff = p < n ? std::memchr(in.data() + p, 0xFF, n - p) : nullptr;
        if (ff == nullptr) return truncated;
        p = static_cast<std::size_t>(static_cast<const char*>(ff) - in.data());
        if (p + 1 >= n) return truncated;
        const std::uint32_t next = u8(in, p + 1);
        if (next == 0x00 || is_rst(next)) {
          p += 2;
        } else if (next == 0xFF) {
          p += 1;  // a fill byte; the following FF starts the marker
        } else {
          break;
        }
      }
      out.bytes.append(in.substr(pos, p - pos));
      pos = p;  // at the FF of the marker that ended the scan
    }
  }
}

// ---------------------------------------------------------------------------------------------
// PNG: the signature, then chunks (4-byte big-endian length, 4-letter type, data, CRC-32 of
// type and data). IHDR first, PLTE (if any) before IDAT, IDAT chunks consecutive, IEND last.

bool keep_png_chunk(std::string_view type) {
  static constexpr std::array<std::string_view, 20> kKept = {
      "IHDR", "PLTE", "IDAT", "IEND", "tRNS", "cHRM", "gAMA", "iCCP", "sBIT", "sRGB",
      "cICP", "mDCv", "cLLi", "bKGD", "hIST", "pHYs", "sPLT", "acTL", "fcTL", "fdAT"};
  return std::find(kKept.begin(), kKept.end(), type) != kKept.end();
}

bool is_letter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

Failure check_ihdr(std::string_view data, Parsed& out, std::uint32_t& colour_type) {
  if (data.size() != 13)
    return "PNG IHDR chunk has length " + std::to_string(data.size()) + ", not 13";
  out.width = be32(data, 0);
  out.height = be32(data, 4);
  if (out.width == 0 || out.height == 0 || out.width > kImageMaxDimension ||
      out.height > kImageMaxDimension)
    return "PNG size " + std::to_string(out.width) + "x" + std::to_string(out.height) +
           " is outside 1 to " + grouped(kImageMaxDimension) + " pixels per side";
  const std::uint32_t depth = u8(data, 8);
  colour_type = u8(data, 9);
  bool depth_ok = false;
  switch (colour_type) {
    case 0: depth_ok = depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16; break;
    case 3: depth_ok = depth == 1 || depth == 2 || depth == 4 || depth == 8; break;
    case 2:
    case 4:
    case 6: depth_ok = depth == 8 || depth == 16; break;
    default: return "PNG has an invalid colour type " + std::to_string(colour_type);
  }
  if (!depth_ok)
    return "PNG colour type " + std::to_string(colour_type) + " cannot have bit depth " +
           std::to_string(depth);
  if (u8(data, 10) != 0 || u8(data, 11) != 0 || u8(data, 12) > 1)
    return "PNG IHDR names an unknown compression, filter or interlace method";
  return std::nullopt;
}

Failure parse_png(std::string_view in, Parsed& out) {
  const std::size_t n = in.size();
  std::uint32_t colour_type = 0;
  bool seen_ihdr = false, seen_plte = false, seen_idat = false, idat_ended = false;
  out.bytes.reserve(n);
  out.bytes.append(kPngSignature);
  std::size_t pos = kPngSignature.size();
  while (true) {
    if (pos == n) return "truncated PNG: no IEND chunk";
    if (n - pos < 8) return "truncated PNG: a chunk header is cut short";
    const std::uint32_t length = be32(in, pos);
    const std::string_view type = in.substr(pos + 4, 4);
    if (!std::all_of(type.begin(), type.end(), is_letter))
      return "PNG is corrupt: no chunk type at byte " + grouped(pos + 4);
    const std::string name(type);
    if (length > 0x7FFFFFFFU) return "PNG chunk " + name + " has an impossible length";
    if (n - pos - 8 < std::size_t{length} + 4)
      return "truncated PNG: the file ends inside chunk " + name;
    const std::string_view data = in.substr(pos + 8, length);
    if (crc32(in.substr(pos + 4, 4 + std::size_t{length})) != be32(in, pos + 8 + length))
      return "PNG chunk " + name + " has a bad CRC";
    if (!seen_ihdr && name != "IHDR") return "PNG does not start with an IHDR chunk";
    if (seen_idat && name != "IDAT") idat_ended = true;

    if (name == "IHDR") {
      if (seen_ihdr) return "PNG has more than one IHDR chunk";
      seen_ihdr = true;
      if (Failure bad = check_ihdr(data, out, colour_type)) return bad;
    } else if (name == "PLTE") {
      if (seen_plte) return "PNG has more than one PLTE chunk";
      if (seen_idat) return "PNG PLTE chunk comes after the image data";
      if (colour_type == 0 || colour_type == 4)
        return "PNG colour type " + std::to_string(colour_type) + " cannot have a palette";
      if (length == 0 || length % 3 != 0 || length > 768)
        return "PNG PLTE chunk has an invalid length of " + std::to_string(length);
      seen_plte = true;
    } else if (name == "IDAT") {
      if (idat_ended) return "PNG IDAT chunks are not consecutive";
      seen_idat = true;
    } else if (name == "IEND") {
      if (length != 0) return "PNG IEND chunk is not empty";
      if (!seen_idat) return "PNG has no IDAT (image data) chunk";
      if (colour_type == 3 && !seen_plte) return "PNG with a palette has no PLTE chunk";
      out.bytes.append(in.substr(pos, 12));
      if (pos + 12 < n) out.note_removed("data after IEND");
      return std::nullopt;
    } else if (name[0] >= 'A' && name[0] <= 'Z') {
      return "PNG has an unknown critical chunk " + name;
    }

    if (keep_png_chunk(type)) out.bytes.append(in.substr(pos, 12 + std::size_t{length}));
    else out.note_removed(name);
    pos += 12 + std::size_t{length};
  }
}

// ---------------------------------------------------------------------------------------------
// WebP: "RIFF", a little-endian size of what follows, "WEBP", then chunks (FourCC,
// little-endian size, data, a pad byte when the size is odd). The first chunk is VP8 (lossy),
// VP8L (lossless) or VP8X (extended: flags and canvas size, then the other chunks).

constexpr std::uint32_t kVp8xExif = 0x08, kVp8xXmp = 0x04, kVp8xAnim = 0x02;

bool keep_webp_chunk(std::string_view fourcc) {
  static constexpr std::array<std::string_view, 7> kKept = {"VP8X", "ICCP", "ANIM", "ANMF",
                                                            "ALPH", "VP8 ", "VP8L"};
  return std::find(kKept.begin(), kKept.end(), fourcc) != kKept.end();
}

std::string fourcc_label(std::string_view fourcc) {
  std::string label = printable(fourcc);
  while (!label.empty() && label.back() == ' ') label.pop_back();
  return label;
}

struct WebpChunk {
  std::string_view fourcc;
  std::string_view data;
};

Failure webp_image_size(const WebpChunk& chunk, std::uint32_t& width, std::uint32_t& height) {
  const std::string_view d = chunk.data;
  if (chunk.fourcc == "VP8 ") {
    if (d.size() < 10) return "WebP VP8 chunk is too short for a frame header";
    const std::uint32_t tag = le24(d, 0);
    if ((tag & 1U) != 0) return "WebP VP8 data does not start with a key frame";
    if (u8(d, 3) != 0x9D || u8(d, 4) != 0x01 || u8(d, 5) != 0x2A)
      return "WebP VP8 frame has no start code";
    if ((tag >> 5) > d.size() - 10) return "WebP VP8 first partition runs past its chunk";
    width = le16(d, 6) & 0x3FFFU;
    height = le16(d, 8) & 0x3FFFU;
    return std::nullopt;
  }
  // VP8L
  if (d.size() < 5) return "WebP VP8L chunk is too short for a header";
  if (u8(d, 0) != 0x2F) return "WebP VP8L chunk has no signature";
  const std::uint32_t bits = le32(d, 1);
  if ((bits >> 29) != 0) return "WebP VP8L chunk has an unknown version";
  width = (bits & 0x3FFFU) + 1;
  height = ((bits >> 14) & 0x3FFFU) + 1;
  return std::nullopt;
}

Failure parse_webp(std::string_view in, Parsed& out) {
  const std::size_t n = in.size();
  const std::uint64_t declared = le32(in, 4);
  if (declared < 4) return "WebP RIFF header declares an impossible size";
  const std::uint64_t end = 8 + declared;  // end of the RIFF data
  if (end > n)
    return "truncated WebP: the RIFF header declares " + grouped(end) + " bytes, the file has " +
           grouped(n);
  if (n > end + 1)  // one pad byte past the declared data is tolerated
    return "WebP RIFF size (" + grouped(end) + " bytes) does not match the file (" + grouped(n) +
           " bytes)";

  std::vector<WebpChunk> chunks;
  std::size_t pos = 12;
  while (pos < end) {
    if (end - pos < 8) return "WebP is corrupt: a chunk header runs past the RIFF data";
    const std::string_view fourcc = in.substr(pos, 4);
    if (!std::all_of(fourcc.begin(), fourcc.end(), [](char c) { return c >= 0x20 && c < 0x7F; }))
      return "WebP is corrupt: no chunk name at byte " + grouped(pos);
    const std::size_t size = le32(in, pos + 4);
    if (size > end - pos - 8)
      return "WebP chunk " + fourcc_label(fourcc) + " runs past the RIFF data";
    chunks.push_back({fourcc, in.substr(pos + 8, size)});
    pos += 8 + size + (size & 1U);  // may pass `end` by the last chunk's pad byte
  }

  if (chunks.empty()) return "WebP has no chunks";
  const WebpChunk& first = chunks.front();
  if (first.fourcc != "VP8 " && first.fourcc != "VP8L" && first.fourcc != "VP8X")
    return "WebP does not start with a VP8, VP8L or VP8X chunk";

  std::uint32_t flags = 0;
  if (first.fourcc == "VP8X") {
    if (first.data.size() != 10)
      return "WebP VP8X chunk has length " + std::to_string(first.data.size()) + ", not 10";
    flags = u8(first.data, 0);
    out.width = le24(first.data, 4) + 1;
    out.height = le24(first.data, 7) + 1;
    const auto count = [&](std::string_view fourcc) {
      return std::count_if(chunks.begin(), chunks.end(),
                           [&](const WebpChunk& c) { return c.fourcc == fourcc; });
    };
    if (count("VP8X") > 1) return "WebP has more than one VP8X chunk";
    if ((flags & kVp8xAnim) != 0) {
      if (count("ANIM") == 0 || count("ANMF") == 0)
        return "animated WebP has no animation or frame chunk (ANIM, ANMF)";
    } else {
      const auto image = std::find_if(chunks.begin(), chunks.end(), [](const WebpChunk& c) {
        return c.fourcc == "VP8 " || c.fourcc == "VP8L";
      });
      if (image == chunks.end()) return "WebP has no image chunk (VP8 or VP8L)";
      std::uint32_t w = 0, h = 0;
      if (Failure bad = webp_image_size(*image, w, h)) return bad;
      if (w != out.width || h != out.height)
        return "WebP canvas " + std::to_string(out.width) + "x" + std::to_string(out.height) +
               " does not match its image " + std::to_string(w) + "x" + std::to_string(h);
    }
  } else {
    if (Failure bad = webp_image_size(first, out.width, out.height)) return bad;
  }

  // Rebuild: kept chunks, each padded to even length, the EXIF/XMP flags cleared.
  std::string body = "WEBP";
  for (const WebpChunk& chunk : chunks) {
    if (!keep_webp_chunk(chunk.fourcc)) {
      out.note_removed(fourcc_label(chunk.fourcc));
      continue;
    }
    body.append(chunk.fourcc);
    put_le32(body, static_cast<std::uint32_t>(chunk.data.size()));
    if (chunk.fourcc == "VP8X") {
      body.push_back(static_cast<char>(flags & ~(kVp8xExif | kVp8xXmp)));
      body.append(chunk.data.substr(1));
    } else {
      body.append(chunk.data);
    }
    if (chunk.data.size() % 2 != 0) body.push_back('\0');
  }
  if ((flags & (kVp8xExif | kVp8xXmp)) != 0) out.note_removed("VP8X EXIF/XMP flags");
  out.bytes = "RIFF";
  put_le32(out.bytes, static_cast<std::uint32_t>(body.size()));
  out.bytes.append(body);
  return std::nullopt;
}

// Validates and cleans one image whose type is already known. Never throws on bad input.
std::variant<Parsed, ImageError> parse(std::string_view mime, std::string_view in) {
  Parsed parsed;
  Failure bad;
  if (mime == kMimeJpeg) bad = parse_jpeg(in, parsed);
  else if (mime == kMimePng) bad = parse_png(in, parsed);
  else bad = parse_webp(in, parsed);
  if (bad) return ImageError{std::move(*bad)};
  if (parsed.width == 0 || parsed.height == 0 || parsed.width > kImageMaxDimension ||
      parsed.height > kImageMaxDimension)
    return ImageError{"image of " + std::to_string(parsed.width) + "x" +
                      std::to_string(parsed.height) + " pixels is outside 1 to " +
                      grouped(kImageMaxDimension) + " pixels per side"};
  return parsed;
}

}  // namespace

std::optional<std::string_view> sniff_image_mime(std::string_view bytes) {
  if (bytes.size() >= 3 && u8(bytes, 0) == 0xFF && u8(bytes, 1) == 0xD8 && u8(bytes, 2) == 0xFF)
    return kMimeJpeg;
  if (starts_with(bytes, kPngSignature)) return kMimePng;
  if (bytes.size() >= 12 && bytes.substr(0, 4) == "RIFF" && bytes.substr(8, 4) == "WEBP")
    return kMimeWebp;
  return std::nullopt;
}

ImageCheck check_image(std::string_view bytes, std::size_t cap) {
  if (bytes.size() > cap)
    return ImageError{"image of " + grouped(bytes.size()) + " bytes exceeds the " + grouped(cap) +
                      "-byte cap"};
  if (bytes.empty()) return ImageError{"empty file: not an image"};
  const std::optional<std::string_view> mime = sniff_image_mime(bytes);
  if (!mime) return ImageError{"not a JPEG, PNG or WebP image"};

  auto first = parse(*mime, bytes);
  if (auto* error = std::get_if<ImageError>(&first)) return std::move(*error);
  Parsed& parsed = std::get<Parsed>(first);

  // The cleaned copy is what will be stored and sent on: it must stand on its own.
  const auto again = parse(*mime, parsed.bytes);
  const auto* reparsed = std::get_if<Parsed>(&again);
  if (reparsed == nullptr || reparsed->bytes != parsed.bytes || !reparsed->removed.empty())
    return ImageError{"image could not be cleaned of its metadata safely"};

  return CheckedImage{std::string(*mime), std::move(parsed.bytes), parsed.width, parsed.height,
                      std::move(parsed.removed)};
}

std::uint32_t crc32(std::string_view bytes) {
  std::uint32_t c = 0xFFFFFFFFU;
  for (char ch : bytes) c = kCrcTable[(c ^ static_cast<unsigned char>(ch)) & 0xFFU] ^ (c >> 8);
  return c ^ 0xFFFFFFFFU;
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1 ||
      length != 32)
    throw std::runtime_error("OpenSSL could not compute a SHA-256 digest");
  constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xF]);
  }
  return out;
}

bool is_sha256_hex(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace saferlink
