// Queries: the intelligence store's request/answer interface. A Query (op + JSON arguments)
// from a device, and later from the console, becomes a call of the intel, notice and audit
// functions, and their result becomes JSON. Deny by default: every op names the roles that may
// ask it; the functions behind it then apply their own finer rules (a shop sees only its own
// member's forms, a police officer only a profile summary, the two-person rule, ...).
//
// run() is a plain function of a database handle: it runs on the store thread, inside one
// Store job, so an op and the audit rows it writes commit together.
#pragma once

#include "core/identity.hpp"
#include "proto/saferlink.pb.h"
#include "server/intel_store.hpp"
#include "server/notices.hpp"

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace SQLite {
class Database;
}

namespace saferlink::server::queries {

// A refusal, with the error code the device gets and one line for a person.
struct QueryError : std::runtime_error {
  QueryError(v1::ErrorCode c, const std::string& message) : std::runtime_error(message), code(c) {}
  v1::ErrorCode code;
};

struct Context {
  Identity actor;
  std::filesystem::path blob_root;  // where image files live (photos.get reads them)
  std::int64_t now_ms = 0;
  notices::Options notice_options;
  intel::RetentionOptions retention;
  intel::CandidateOptions candidates;
};

struct Answer {
  std::string json;                        // the result: a JSON object or array
  std::vector<std::string> delete_blobs;   // image files to delete once this has committed
};

// Runs `op`. Throws QueryError for an unknown op, a role that may not ask it, malformed
// arguments, or a refusal by the store.
Answer run(SQLite::Database& db, const std::string& op, const std::string& args_json,
           const Context& context);

// The ops and the roles that may ask each, for documentation and tests.
struct OpInfo {
  const char* op;
  std::vector<Role> roles;
};
const std::vector<OpInfo>& ops();

}  // namespace saferlink::server::queries
