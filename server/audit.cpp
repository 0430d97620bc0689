#include "server/audit.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <openssl/evp.h>

#include <limits>
#include <stdexcept>
#include <utility>

namespace saferlink::server::audit {
namespace {

const std::string kZeroHash(64, '0');

// Appends `field` as an 8-byte big-endian length and its bytes, so that field boundaries are
// part of what is hashed: ("ab", "c") and ("a", "bc") serialise differently.
void put_field(std::string& out, std::string_view field) {
  const auto size = static_cast<std::uint64_t>(field.size());
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((size >> shift) & 0xffU));
  }
  out.append(field);
}

std::string hex(const unsigned char* bytes, unsigned int size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2U);
  for (unsigned int i = 0; i < size; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 0x0fU]);
  }
  return out;
}

constexpr const char* kColumns =
    "seq, at_ms, actor_id, actor_role, action, object_type, object_id, detail, prev_hash, hash";

Row read_row(const SQLite::Statement& s) {
  Row r;
  r.seq = s.getColumn(0).getInt64();
  r.entry.at_ms = s.getColumn(1).getInt64();
  r.entry.actor_id = s.getColumn(2).getString();
  r.entry.actor_role = s.getColumn(3).getString();
  r.entry.action = s.getColumn(4).getString();
  r.entry.object_type = s.getColumn(5).getString();
  r.entry.object_id = s.getColumn(6).getString();
  r.entry.detail = s.getColumn(7).getString();
  r.prev_hash = s.getColumn(8).getString();
  r.hash = s.getColumn(9).getString();
  return r;
}

}  // namespace

std::string row_hash(std::int64_t seq, const Entry& entry, const std::string& prev_hash) {
  std::string message;
  put_field(message, "saferlink-audit-v1");
  put_field(message, prev_hash);
  put_field(message, std::to_string(seq));
  put_field(message, std::to_string(entry.at_ms));
  put_field(message, entry.actor_id);
  put_field(message, entry.actor_role);
  put_field(message, entry.action);
  put_field(message, entry.object_type);
  put_field(message, entry.object_id);
  put_field(message, entry.detail);

  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(message.data(), message.size(), digest, &size, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("audit: SHA-256 failed (OpenSSL EVP_Digest)");
  }
  return hex(digest, size);
}

std::int64_t append(SQLite::Database& db, const Entry& entry) {
  std::int64_t last_seq = 0;
  std::string prev_hash = kZeroHash;
  {
    SQLite::Statement last(db, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1");
    if (last.executeStep()) {
      last_seq = last.getColumn(0).getInt64();
      prev_hash = last.getColumn(1).getString();
    }
  }
  const std::int64_t seq = last_seq + 1;
  const std::string hash = row_hash(seq, entry, prev_hash);

  SQLite::Statement insert(
      db,
      "INSERT INTO audit_log (seq, at_ms, actor_id, actor_role, action, object_type, "
      "object_id, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  insert.bind(1, seq);
  insert.bind(2, entry.at_ms);
  insert.bind(3, entry.actor_id);
  insert.bind(4, entry.actor_role);
  insert.bind(5, entry.action);
  insert.bind(6, entry.object_type);
  insert.bind(7, entry.object_id);
  insert.bind(8, entry.detail);
  insert.bind(9, prev_hash);
  insert.bind(10, hash);
  insert.exec();
  return seq;
}

std::vector<Row> list(SQLite::Database& db, const Filter& filter) {
  SQLite::Statement select(
      db, std::string("SELECT ") + kColumns +
              " FROM audit_log WHERE (?1 IS NULL OR object_type = ?1) AND "
              "(?2 IS NULL OR object_id = ?2) AND (?3 IS NULL OR actor_id = ?3) AND seq > ?4 "
              "ORDER BY seq LIMIT ?5");
  auto bind_optional = [&select](int index, const std::optional<std::string>& value) {
    if (value) {
      select.bind(index, *value);
    } else {
      select.bind(index);  // NULL
    }
  };
  bind_optional(1, filter.object_type);
  bind_optional(2, filter.object_id);
  bind_optional(3, filter.actor_id);
  select.bind(4, filter.after_seq);
  constexpr auto kMax = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
  select.bind(5, static_cast<std::int64_t>(filter.limit > kMax ? kMax : filter.limit));

  std::vector<Row> out;
  while (select.executeStep()) out.push_back(read_row(select));
  return out;
}

Verification verify(SQLite::Database& db) {
  Verification out;
  SQLite::Statement select(db, std::string("SELECT ") + kColumns + " FROM audit_log ORDER BY seq");
  std::int64_t expected_seq = 1;
  std::string prev_hash = kZeroHash;
  auto broken = [&out](std::int64_t seq, std::string reason) {
    out.ok = false;
    out.first_bad = seq;
    out.reason = "row " + std::to_string(seq) + ": " + std::move(reason);
    return out;
  };
  while (select.executeStep()) {
    const Row row = read_row(select);
    ++out.rows;
    if (row.seq != expected_seq) {
      const std::string missing =
          row.seq == expected_seq + 1
              ? "row " + std::to_string(expected_seq) + " is missing"
              : "rows " + std::to_string(expected_seq) + ".." + std::to_string(row.seq - 1) +
                    " are missing";
      if (row.seq < expected_seq) {
        // Only possible for a seq below 1: the primary key keeps seq unique and we read in order.
        return broken(row.seq, "seq is below 1");
      }
      if (expected_seq == 1) {
        return broken(row.seq, "the chain starts here instead of at row 1 (" + missing + ")");
      }
      return broken(row.seq,
                    "follows row " + std::to_string(expected_seq - 1) + " (" + missing + ")");
    }
    if (row.prev_hash != prev_hash) {
      return broken(row.seq, expected_seq == 1
                                 ? "prev_hash of the first row is not all zeros"
                                 : "prev_hash does not match the hash of row " +
                                       std::to_string(expected_seq - 1));
    }
    if (row.hash != row_hash(row.seq, row.entry, row.prev_hash)) {
      return broken(row.seq, "hash does not match its contents");
    }
    prev_hash = row.hash;
    ++expected_seq;
  }
  return out;
}

}  // namespace saferlink::server::audit
