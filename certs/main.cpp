// saferlink-ca: the partnership's certificate authority on the command line.
//   saferlink-ca init   --dir DIR [--name NAME] [--towns a,b,c]
//   saferlink-ca issue  --dir DIR --role R --town T --member M --id ID [--host H]... [--days N]
//   saferlink-ca revoke --dir DIR --id ID
//   saferlink-ca crl    --dir DIR
//   saferlink-ca list   --dir DIR [--json]
//   saferlink-ca export --dir DIR --id ID --out FILE.p12 (--password TEXT | --password-file F)
// Exit 0 on success; otherwise one line "saferlink-ca: <reason>" on stderr and exit 1
// (exit 2 for a command line that does not parse).
#include "certs/ca.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

using namespace saferlink;

void print_table(const std::vector<ca::Entry>& entries) {
  const std::array<std::string, 7> headers{"ID",     "ROLE",      "TOWN", "MEMBER",
                                           "SERIAL", "NOT AFTER", "STATE"};
  std::vector<std::array<std::string, 7>> rows;
  for (const ca::Entry& e : entries) {
    std::string state = e.state;
    if (!e.revoked_at.empty()) state += " " + e.revoked_at;
    rows.push_back({e.id, e.role, e.town, e.member, e.serial_hex, e.not_after, state});
  }
  std::array<std::size_t, 7> widths{};
  for (std::size_t c = 0; c < headers.size(); ++c) {
    widths[c] = headers[c].size();
    for (const auto& row : rows) widths[c] = std::max(widths[c], row[c].size());
  }
  auto print_row = [&](const std::array<std::string, 7>& row) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(widths[c] - row[c].size() + 2, ' ');
    }
    std::cout << line << '\n';
  };
  print_row(headers);
  for (const auto& row : rows) print_row(row);
}

void print_json(const std::vector<ca::Entry>& entries) {
  for (const ca::Entry& e : entries) {
    nlohmann::ordered_json line{
        {"id", e.id},
        {"role", e.role},
        {"town", e.town},
        {"member", e.member},
        {"serial", e.serial_hex},
        {"not_after", e.not_after},
        {"state", e.state},
        {"revoked_at", e.revoked_at.empty() ? nlohmann::ordered_json(nullptr)
                                            : nlohmann::ordered_json(e.revoked_at)}};
    std::cout << line.dump() << '\n';
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"saferlink-ca: the SaferLink partnership's certificate authority"};
  app.require_subcommand(1);

  std::string dir;
  ca::InitOptions init_options;
  std::string role_text;
  ca::IssueOptions issue;
  std::string revoke_id;
  int days = 825;
  bool json = false;

  auto* init_cmd = app.add_subcommand("init", "Create a new CA in DIR");
  init_cmd->add_option("--dir", dir, "CA directory")->required();
  init_cmd->add_option("--name", init_options.name, "Partnership name (CA subject)")
      ->capture_default_str();
  init_cmd->add_option("--towns", init_options.towns, "Towns certificates may name")
      ->delimiter(',');

  auto* issue_cmd = app.add_subcommand("issue", "Issue a certificate and key into DIR/issued/");
  issue_cmd->add_option("--dir", dir, "CA directory")->required();
  issue_cmd->add_option("--role", role_text, "shop, police, cctv, coordinator or hub")->required();
  issue_cmd->add_option("--town", issue.town, "A town in DIR/towns.txt, or all (not for shops)");
  issue_cmd->add_option("--member", issue.member, "Member organisation (hub: the CA name)");
  issue_cmd->add_option("--id", issue.id, "Device or person id (hub: hub)");
  issue_cmd->add_option("--host", issue.hosts, "Hub only: IP address or DNS name (repeatable)");
  issue_cmd->add_option("--days", days, "Days the certificate is valid")
      ->capture_default_str()
      ->check(CLI::Range(1, 36500));

  auto* revoke_cmd = app.add_subcommand("revoke", "Revoke a certificate and rewrite the CRL");
  revoke_cmd->add_option("--dir", dir, "CA directory")->required();
  revoke_cmd->add_option("--id", revoke_id, "Id to revoke")->required();

  auto* crl_cmd = app.add_subcommand("crl", "Re-sign DIR/crl.pem with a fresh nextUpdate");
  crl_cmd->add_option("--dir", dir, "CA directory")->required();

  std::string export_id;
  std::filesystem::path export_out;
  std::string password;
  std::filesystem::path password_file;
  auto* export_cmd = app.add_subcommand(
      "export", "Write one certificate, its key and the CA as a PKCS#12 bundle for a browser");
  export_cmd->add_option("--dir", dir, "CA directory")->required();
  export_cmd->add_option("--id", export_id, "Whose certificate")->required();
  export_cmd->add_option("--out", export_out, "The .p12 file to write (never overwritten)")
      ->required();
  auto* password_opt =
      export_cmd->add_option("--password", password, "Bundle password (at least 8 characters)");
  export_cmd
      ->add_option("--password-file", password_file,
                   "Read the bundle password from the first line of this file")
      ->check(CLI::ExistingFile)
      ->excludes(password_opt);

  auto* list_cmd = app.add_subcommand("list", "List every certificate issued");
  list_cmd->add_option("--dir", dir, "CA directory")->required();
  list_cmd->add_flag("--json", json, "One JSON object per line");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::cerr << "saferlink-ca: " << e.what() << " (see --help)\n";
    return 2;
  }

  try {
    if (init_cmd->parsed()) {
      ca::init(dir, init_options);
      std::cout << "CA created in " << dir << '\n';
    } else if (issue_cmd->parsed()) {
      auto role = parse_role(role_text);
      if (!role) {
        throw ca::CaError("unknown role \"" + role_text +
                          "\": use shop, police, cctv, coordinator or hub");
      }
      issue.role = *role;
      issue.not_after_offset = std::chrono::hours(24) * days;
      ca::Issued issued = ca::issue(dir, issue);
      std::cout << issued.cert.string() << '\n' << issued.key.string() << '\n';
    } else if (revoke_cmd->parsed()) {
      ca::revoke(dir, revoke_id);
      std::cout << revoke_id << " revoked; CRL rewritten\n";
    } else if (export_cmd->parsed()) {
      if (!password_file.empty()) {
        std::ifstream in(password_file);
        std::getline(in, password);
      }
      if (password.empty()) {
        throw ca::CaError("give the bundle a password: --password TEXT or --password-file FILE");
      }
      ca::export_p12(dir, export_id, export_out, password);
      std::cout << export_out.string() << '\n';
    } else if (crl_cmd->parsed()) {
      ca::refresh_crl(dir);
    } else if (list_cmd->parsed()) {
      auto entries = ca::list(dir);
      if (json) {
        print_json(entries);
      } else {
        print_table(entries);
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "saferlink-ca: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
