#include "core/image.hpp"

#include "tests/support/images.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

// Test images come from tests/support/images.hpp, built byte by byte, so that each test says
// exactly what it feeds in.

namespace {

using namespace std::string_literals;
using namespace saferlink::test::images;
using saferlink::check_image;
using saferlink::CheckedImage;
using saferlink::ImageError;

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

CheckedImage passed(const saferlink::ImageCheck& result) {
  if (const auto* error = std::get_if<ImageError>(&result)) FAIL("refused: " << error->reason);
  return std::get<CheckedImage>(result);
}

std::string refusal(const saferlink::ImageCheck& result) {
  if (std::holds_alternative<CheckedImage>(result)) return "(accepted)";
  return std::get<ImageError>(result).reason;
}

}  // namespace

TEST_CASE("crc32 and sha256_hex give the standard check values") {
  CHECK(saferlink::crc32("123456789") == 0xCBF43926U);
  CHECK(saferlink::crc32("") == 0U);
  CHECK(saferlink::sha256_hex("abc") ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(saferlink::sha256_hex("") ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(saferlink::is_sha256_hex(saferlink::sha256_hex("abc")));
  CHECK_FALSE(saferlink::is_sha256_hex(
      "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
  CHECK_FALSE(saferlink::is_sha256_hex("ba7816bf"));
  CHECK_FALSE(saferlink::is_sha256_hex(std::string(63, 'a') + "g"));
}

TEST_CASE("image check passes a PNG and strips its text and time chunks") {
  const std::string png = make_png(3, 2, true);
  const CheckedImage image = passed(check_image(png));
  CHECK(image.mime == "image/png");
  CHECK(image.width == 3);
  CHECK(image.height == 2);
  CHECK(image.bytes == make_png(3, 2, false));
  CHECK_FALSE(contains(image.bytes, "GPS"));
  CHECK(image.removed == std::vector<std::string>{"tEXt", "tIME"});
}

TEST_CASE("image check passes a JPEG and returns it without its Exif GPS data, still valid") {
  const std::string jpeg = make_jpeg(true);
  REQUIRE(contains(jpeg, "GPS"));
  REQUIRE(contains(jpeg, kLatitudeRationals));
  const CheckedImage image = passed(check_image(jpeg));
  CHECK(image.mime == "image/jpeg");
  CHECK(image.width == 16);
  CHECK(image.height == 16);
  CHECK_FALSE(contains(image.bytes, "GPS"));
  CHECK_FALSE(contains(image.bytes, kLatitudeRationals));
  CHECK_FALSE(contains(image.bytes, "Exif"));
  CHECK_FALSE(contains(image.bytes, "Pentagon"));
  CHECK(contains(image.bytes, "JFIF"));
  CHECK(image.bytes == make_jpeg(false));
  CHECK(image.removed == std::vector<std::string>{"APP1 Exif", "COM"});

  const CheckedImage again = passed(check_image(image.bytes));
  CHECK(again.bytes == image.bytes);
  CHECK(again.removed.empty());
}

TEST_CASE("image check keeps a JPEG's ICC profile and Adobe segment, drops XMP, MPF, thumbnail") {
  const std::string icc = segment(0xE2, "ICC_PROFILE\0\x01\x01profile-bytes"s);
  const std::string adobe = segment(0xEE, "Adobe\0\x64\x00\x00\x00\x00\x01"s);
  const std::string xmp = segment(0xE1, "http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>"s);
  const std::string mpf = segment(0xE2, "MPF\0\x4D\x4D\x00\x2A"s);
  const std::string jfxx = segment(0xE0, "JFXX\0\x10thumbnail-jpeg"s);
  const std::string frame = jpeg_tables_and_frame(16, 16) + kScan + kEoi;
  const std::string jpeg = "\xFF\xD8"s + kJfif + jfxx + icc + xmp + mpf + adobe + frame;

  const CheckedImage image = passed(check_image(jpeg));
  CHECK(image.bytes == "\xFF\xD8"s + kJfif + icc + adobe + frame);
  CHECK(image.removed == std::vector<std::string>{"APP0 JFXX", "APP1 XMP", "APP2 MPF"});
}

TEST_CASE("image check removes the thumbnail from a JPEG's JFIF segment") {
  const std::string thumbnail =
      segment(0xE0, "JFIF\0\x01\x02\x00\x00\x01\x00\x01\x02\x01"s + "RGBrgb");
  const std::string frame = jpeg_tables_and_frame(16, 16) + kScan + kEoi;
  const CheckedImage image = passed(check_image("\xFF\xD8"s + thumbnail + frame));
  CHECK(image.bytes == "\xFF\xD8"s + kJfif + frame);
  CHECK(image.removed == std::vector<std::string>{"JFIF thumbnail"});
}

TEST_CASE("image check drops whatever follows a JPEG's end-of-image or a PNG's IEND") {
  const std::string trailer = "\xFF\xD8\xFF\xE1hidden second image with Exif GPS"s;
  const CheckedImage jpeg = passed(check_image(make_jpeg(false) + trailer));
  CHECK(jpeg.bytes == make_jpeg(false));
  CHECK(jpeg.removed == std::vector<std::string>{"data after end-of-image"});

  const CheckedImage png = passed(check_image(make_png(2, 2, false) + "PK\x03\x04zip"s));
  CHECK(png.bytes == make_png(2, 2, false));
  CHECK(png.removed == std::vector<std::string>{"data after IEND"});
}

TEST_CASE("image check follows a JPEG through several scans with tables between them") {
  const std::string second_scan = segment(0xC4, "\x11\x00\x01"s + std::string(14, '\0') + "\x00"s) +
                                  segment(0xDA, "\x01\x01\x00\x01\x3F\x00"s) + "\x55\xFF\xD3\x66"s;
  const std::string jpeg = "\xFF\xD8"s + kJfif + jpeg_tables_and_frame(16, 16) + kScan +
                           second_scan + kEoi;
  CHECK(passed(check_image(jpeg)).bytes == jpeg);
}

TEST_CASE("image check passes a WebP and removes its EXIF and XMP chunks and flags") {
  const std::string webp = make_webp(true);
  const CheckedImage image = passed(check_image(webp));
  CHECK(image.mime == "image/webp");
  CHECK(image.width == 16);
  CHECK(image.height == 8);
  CHECK(image.bytes == make_webp(false));
  CHECK(image.bytes[20] == '\0');  // VP8X flags: EXIF and XMP bits cleared
  CHECK_FALSE(contains(image.bytes, "GPS"));
  CHECK(image.removed == std::vector<std::string>{"EXIF", "XMP", "VP8X EXIF/XMP flags"});
}

TEST_CASE("image check passes a simple lossy WebP and reads its frame size") {
  std::string frame = le24(0x10 | (4 << 5)) + "\x9D\x01\x2A"s + le16(40) + le16(30) + "abcd";
  const CheckedImage image = passed(check_image(riff(riff_chunk("VP8 ", frame))));
  CHECK(image.width == 40);
  CHECK(image.height == 30);
}

TEST_CASE("image check judges by content: a text file renamed .jpg is refused") {
  CHECK(refusal(check_image("Dear coordinator,\nplease find the photo attached.\n")) ==
        "not a JPEG, PNG or WebP image");
  CHECK(refusal(check_image("GIF89a\x01\x00\x01\x00"s)) == "not a JPEG, PNG or WebP image");
  CHECK(refusal(check_image("RIFF\x04\x00\x00\x00WAVE"s)) == "not a JPEG, PNG or WebP image");
  CHECK(saferlink::sniff_image_mime(make_png(1, 1, false)) == "image/png");
  CHECK(saferlink::sniff_image_mime(make_jpeg(false)) == "image/jpeg");
  CHECK(saferlink::sniff_image_mime(make_webp(false)) == "image/webp");
}

TEST_CASE("image check refuses an empty file and one over the cap, before reading it") {
  CHECK(refusal(check_image("")) == "empty file: not an image");
  const std::string huge(9'437'184, '\0');
  CHECK(refusal(check_image(huge)) == "image of 9 437 184 bytes exceeds the 8 388 608-byte cap");

  const std::string png = make_png(2, 2, false);
  CHECK(std::holds_alternative<CheckedImage>(check_image(png, png.size())));
  CHECK(refusal(check_image(png, png.size() - 1)) ==
        "image of " + std::to_string(png.size()) + " bytes exceeds the " +
            std::to_string(png.size() - 1) + "-byte cap");
}

TEST_CASE("image check refuses every truncation of a JPEG, PNG and WebP") {
  const std::string jpeg = make_jpeg(true);
  CHECK(refusal(check_image(jpeg.substr(0, jpeg.size() - 2))) ==
        "truncated JPEG: no end-of-image marker");
  CHECK(refusal(check_image(jpeg.substr(0, 30))).starts_with("truncated JPEG: APP1"));

  const std::string png = make_png(4, 4, true);
  CHECK(refusal(check_image(png.substr(0, png.size() - 12))) == "truncated PNG: no IEND chunk");
  CHECK(refusal(check_image(png.substr(0, png.size() - 40))) ==
        "truncated PNG: the file ends inside chunk IDAT");

  const std::string webp = make_webp(true);
  CHECK(refusal(check_image(webp.substr(0, webp.size() - 1)))
            .starts_with("truncated WebP: the RIFF header declares"));

  for (const std::string* image : {&jpeg, &png, &webp}) {
    for (std::size_t length = 1; length < image->size(); ++length) {
      const auto result = check_image(std::string_view(*image).substr(0, length));
      CHECK_MESSAGE(std::holds_alternative<ImageError>(result), "prefix of " << length);
    }
  }
}

TEST_CASE("image check refuses a PNG chunk with a bad CRC") {
  std::string png = make_png(3, 3, false);
  const std::size_t idat = png.find("IDAT");
  png[idat + 12] = static_cast<char>(png[idat + 12] ^ 0x01);  // a pixel byte
  CHECK(refusal(check_image(png)) == "PNG chunk IDAT has a bad CRC");
}

TEST_CASE("image check refuses PNGs whose chunk structure is wrong") {
  const std::string idat = png_idat(2, 2), iend = png_chunk("IEND", "");
  CHECK(refusal(check_image(kPngSignature + idat + png_ihdr(2, 2) + iend)) ==
        "PNG does not start with an IHDR chunk");
  CHECK(refusal(check_image(kPngSignature + png_ihdr(2, 2) + iend)) ==
        "PNG has no IDAT (image data) chunk");
  CHECK(refusal(check_image(kPngSignature + png_ihdr(2, 2) + idat + png_chunk("tEXt", "a\0b"s) +
                            idat + iend)) == "PNG IDAT chunks are not consecutive");
  CHECK(refusal(check_image(kPngSignature + png_ihdr(0, 2) + idat + iend))
            .starts_with("PNG size 0x2 is outside 1 to 20 000"));
  CHECK(refusal(check_image(kPngSignature + png_ihdr(20001, 2) + idat + iend))
            .starts_with("PNG size 20001x2"));
  CHECK(refusal(check_image(kPngSignature + png_ihdr(2, 2) + png_chunk("ZZZZ", "") + idat +
                            iend)) == "PNG has an unknown critical chunk ZZZZ");
  const std::string palette = png_chunk("IHDR", be32(2) + be32(2) + "\x08\x03\x00\x00\x00"s);
  CHECK(refusal(check_image(kPngSignature + palette + idat + iend)) ==
        "PNG with a palette has no PLTE chunk");
  const std::string bad_depth = png_chunk("IHDR", be32(2) + be32(2) + "\x04\x02\x00\x00\x00"s);
  CHECK(refusal(check_image(kPngSignature + bad_depth + idat + iend)) ==
        "PNG colour type 2 cannot have bit depth 4");
}

TEST_CASE("image check refuses JPEGs whose marker structure is wrong") {
  const std::string tables = jpeg_tables_and_frame(16, 16);
  CHECK(refusal(check_image("\xFF\xD8"s + kJfif + kScan + kEoi)) ==
        "JPEG has image data before its frame header (no SOFn before SOS)");
  CHECK(refusal(check_image("\xFF\xD8"s + kJfif + tables + kEoi)) ==
        "JPEG has no image data (end-of-image before any scan)");
  CHECK(refusal(check_image("\xFF\xD8"s + kJfif + "garbage"s + tables + kScan + kEoi))
            .starts_with("JPEG is corrupt: expected a marker at byte 20"));
  CHECK(refusal(check_image("\xFF\xD8\xFF\xE0\x00\x01"s + tables + kScan + kEoi)) ==
        "JPEG APP0 (FFE0) segment has an impossible length of 1");
  CHECK(refusal(check_image("\xFF\xD8\xFF\xE0\x40\x00JFIF"s)) ==
        "truncated JPEG: APP0 (FFE0) segment declares 16 384 bytes, only 6 remain");
  CHECK(refusal(check_image("\xFF\xD8"s + kJfif + jpeg_tables_and_frame(16, 0) + kScan + kEoi)) ==
        "JPEG frame header leaves the height to a later DNL marker, which is not supported");
  CHECK(refusal(check_image("\xFF\xD8"s + kJfif + jpeg_tables_and_frame(20001, 16) + kScan +
                            kEoi)) ==
        "image of 20001x16 pixels is outside 1 to 20 000 pixels per side");
  CHECK(refusal(check_image("\xFF\xD8"s + kJfif + tables + tables + kScan + kEoi)) ==
        "JPEG has more than one frame header (SOFn)");
  const std::string other_component = segment(0xDA, "\x01\x02\x00\x00\x3F\x00"s) + "\x12"s;
  CHECK(refusal(check_image("\xFF\xD8"s + kJfif + tables + other_component + kEoi)) ==
        "JPEG scan names a component the frame does not have");
}

TEST_CASE("image check refuses WebPs whose RIFF structure is wrong") {
  const std::string image = vp8l(16, 8);
  CHECK(refusal(check_image(riff(image) + "xy")) ==
        "WebP RIFF size (" + std::to_string(8 + 4 + image.size()) +
            " bytes) does not match the file (" + std::to_string(8 + 4 + image.size() + 2) +
            " bytes)");
  CHECK(std::holds_alternative<CheckedImage>(check_image(riff(image) + "\0"s)));  // a pad byte
  CHECK(refusal(check_image(riff(vp8x(0, 16, 8) + kWebpExif))) ==
        "WebP has no image chunk (VP8 or VP8L)");
  CHECK(refusal(check_image(riff(kWebpExif + image))) ==
        "WebP does not start with a VP8, VP8L or VP8X chunk");
  CHECK(refusal(check_image(riff(vp8x(0, 32, 8) + image))) ==
        "WebP canvas 32x8 does not match its image 16x8");
  std::string overlong = riff(image);
  overlong[16] = '\x7F';  // the VP8L chunk's size now runs past the RIFF data
  CHECK(refusal(check_image(overlong)) == "WebP chunk VP8L runs past the RIFF data");
}

TEST_CASE("image check survives thousands of mutated and truncated images without crashing") {
  const std::vector<std::string> seeds = {make_png(5, 4, true), make_jpeg(true), make_webp(true),
                                          make_png(2, 2, false), make_jpeg(false),
                                          make_webp(false)};
  std::mt19937 rng(20240611);
  const auto pick = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  int accepted = 0, refused = 0;
  for (int round = 0; round < 4000; ++round) {
    std::string bytes = seeds[pick(seeds.size())];
    const int mutations = 1 + static_cast<int>(pick(4));
    for (int m = 0; m < mutations && !bytes.empty(); ++m) {
      switch (pick(6)) {
        case 0:  // flip bits in one byte
          bytes[pick(bytes.size())] ^= static_cast<char>(1 + pick(255));
          break;
        case 1:  // truncate
          bytes.resize(pick(bytes.size()));
          break;
        case 2:  // insert random bytes
          bytes.insert(pick(bytes.size()), std::string(1 + pick(8), static_cast<char>(pick(256))));
          break;
        case 3:  // set a byte to a value parsers care about
          bytes[pick(bytes.size())] = "\xFF\x00\xD9\xDA\x7F\x80"[pick(6)];
          break;
        case 4: {  // duplicate a range
          const std::size_t at = pick(bytes.size());
          bytes.insert(pick(bytes.size()), bytes.substr(at, 1 + pick(32)));
          break;
        }
        default:  // erase a range
          bytes.erase(pick(bytes.size()), 1 + pick(16));
          break;
      }
    }
    const auto result = check_image(bytes);
    if (const auto* image = std::get_if<CheckedImage>(&result)) {
      ++accepted;
      // Whatever passes is a clean image on its own: checking it again changes nothing.
      const auto again = check_image(image->bytes);
      REQUIRE(std::holds_alternative<CheckedImage>(again));
      CHECK(std::get<CheckedImage>(again).bytes == image->bytes);
      CHECK(std::get<CheckedImage>(again).removed.empty());
      CHECK(image->width >= 1);
      CHECK(image->width <= saferlink::kImageMaxDimension);
      CHECK(saferlink::sniff_image_mime(image->bytes) == image->mime);
    } else {
      ++refused;
      CHECK_FALSE(std::get<ImageError>(result).reason.empty());
    }
  }
  // Both outcomes occur, so the loop exercised the parsers past their first check.
  CHECK(accepted > 100);
  CHECK(refused > 1000);
}
