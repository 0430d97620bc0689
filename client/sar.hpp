// `saferlink coord sar PROFILE_ID --out DIR`: a subject access request export. Asks the hub
// for everything held about one offender profile (op "sar": the profile, merged profiles,
// incidents, notices, who viewed what) and downloads its photos (op "photos.get", in pieces),
// writing DIR/profile-ID.json and DIR/photos/SHA256.{jpg,png,webp}. Exit 0 once every file is
// written; the hub audits the export and every photo read.
#pragma once

#include "client/client.hpp"

#include <filesystem>
#include <iosfwd>

namespace saferlink::client {

int run_sar(const ClientOptions& options, std::int64_t profile_id,
            const std::filesystem::path& out_dir, std::ostream& out, std::ostream& err);

// `saferlink coord audit verify`: prints the verification (and the last row's seq and hash, to
// be recorded elsewhere: a chain cannot show rows cut off its end). Exit 0 only when the chain
// is intact; 1 with the first broken row named when it is not.
int run_audit_verify(const ClientOptions& options, bool json, std::ostream& out,
                     std::ostream& err);

}  // namespace saferlink::client
