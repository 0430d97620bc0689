// Crash safety of incident forms: a shop streams forms while the real saferlink-hub is killed
// with SIGKILL. Every form the hub confirmed must be on disk (it confirms only after commit),
// exactly once; after a restart the shop's retries of all of them, confirmed or not, are
// answered and stored once, with the very confirmation of the first filing; and the audit
// chain written across the crashes still verifies.
#include "tests/support/device.hpp"
#include "tests/support/hub_process.hpp"
#include "tests/support/pki.hpp"

#include "server/audit.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <csignal>
#include <cstdio>
#include <map>
#include <set>
#include <string>

using namespace saferlink;
using namespace saferlink::test;

namespace {

constexpr const char* kShop = "shop-chatham-1";

std::string form_id_of(int i) {
  char id[32];
  std::snprintf(id, sizeof id, "crash-form-%04d", i);
  return id;
}

// Form number `i`: the same content every time it is built (a retry sends the same form).
v1::Envelope form_envelope(int i) {
  static const std::int64_t base = now_ms() - 3 * 3'600'000;  // fixed for the whole run
  v1::Envelope e;
  auto* f = e.mutable_form();
  f->set_form_id(form_id_of(i));
  f->set_occurred_at_ms(base + i * 1'000);
  f->set_town("chatham");
  f->set_premises("Pentagon Centre, unit " + std::to_string(i % 40));
  f->set_category(i % 7 == 0 ? "violence_or_threats" : "theft_from_shop");
  f->set_description("Incident " + std::to_string(i) + ": took goods, left by exit " +
                     std::to_string(i % 3));
  f->set_goods("item set " + std::to_string(i));
  f->set_value_pence(100 + i);
  f->add_unknown_offenders("suspect " + std::to_string(i % 11) + ", grey hoodie");
  return e;
}

struct Answers {
  std::map<std::string, v1::FormConfirmed> confirmed;  // by form_id
  std::map<std::uint64_t, std::string> sent;           // msg_id -> form_id
};

// Takes one envelope into `answers`; a refusal of a form fails the test, naming it.
void take(Answers& answers, const v1::Envelope& e) {
  if (e.has_form_confirmed()) {
    const auto& c = e.form_confirmed();
    CAPTURE(c.form_id());
    // A second FormConfirmed for one filing would mean the hub answered twice.
    CHECK(answers.confirmed.emplace(c.form_id(), c).second);
  } else if (e.has_error()) {
    const auto it = answers.sent.find(e.error().in_reply_to());
    FAIL_CHECK("the hub refused form " << (it == answers.sent.end() ? "?" : it->second) << ": "
                                       << e.error().message());
  }
}

// Sends forms [first, last), noting which msg_id carried which form.
void send_forms(TestDevice& shop, Answers& answers, int first, int last) {
  for (int i = first; i < last; ++i) {
    answers.sent.emplace(shop.send(form_envelope(i)), form_id_of(i));
  }
}

// The audit chain of the database at `db` as it is now.
server::audit::Verification verify_audit(const std::filesystem::path& db) {
  SQLite::Database check(db.string(), SQLite::OPEN_READONLY);
  return server::audit::verify(check);
}

// Waits until `want` forms are confirmed, or `timeout` passes; returns whether they were.
bool await_confirmations(TestDevice& shop, Answers& answers, std::size_t want,
                         std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (answers.confirmed.size() < want) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left <= 0ms) return false;
    auto e = shop.next(left);
    if (!e) return false;
    take(answers, *e);
  }
  return true;
}

// After the hub died: whatever it managed to write before dying is still confirmation.
void take_what_arrived(TestDevice& shop, Answers& answers) {
  try {
    while (auto e = shop.next(300ms)) take(answers, *e);
  } catch (const client::ClientError&) {
    // The connection is gone, as expected; everything before the loss was taken.
  }
}

struct StoredForm {
  std::int64_t received_at_ms = 0;
  std::string description;
  std::int64_t value_pence = 0;
};

// What the database holds, read through a connection of its own (the hub dead or alive).
std::map<std::string, StoredForm> stored_forms(const std::filesystem::path& db) {
  SQLite::Database check(db.string(), SQLite::OPEN_READONLY);
  std::map<std::string, StoredForm> out;
  SQLite::Statement select(
      check, "SELECT form_id, received_at_ms, description, value_pence FROM incident_forms");
  while (select.executeStep()) {
    StoredForm s{select.getColumn(1).getInt64(), select.getColumn(2).getString(),
                 select.getColumn(3).getInt64()};
    out.emplace(select.getColumn(0).getString(), s);
  }
  return out;
}

// Checks that `form_id` is stored exactly once: one row, and one "create form" audit row (a
// form stored twice, or its retry audited as a second filing, shows here).
void check_stored_once(SQLite::Database& db, const std::string& form_id) {
  SQLite::Statement rows(db, "SELECT count(*) FROM incident_forms WHERE form_id = ?");
  rows.bind(1, form_id);
  REQUIRE(rows.executeStep());
  CHECK(rows.getColumn(0).getInt() == 1);
  SQLite::Statement audited(db,
                            "SELECT count(*) FROM audit_log WHERE object_type = 'form' AND "
                            "action = 'create' AND object_id = ?");
  audited.bind(1, form_id);
  REQUIRE(audited.executeStep());
  CHECK(audited.getColumn(0).getInt() == 1);
}

}  // namespace

TEST_CASE("forms streamed while the hub is SIGKILLed: every confirmed form is stored exactly "
          "once, and retries of all of them after restart are stored once") {
  constexpr int kForms = 300;
  constexpr std::size_t kConfirmedBeforeKill = 60;
  constexpr int kSentAtTheKill = 20;
  TestPki pki;
  pki.issue(Role::shop, "chatham", kShop, "Boots Chatham");
  TempDir data;
  const auto db = data.path / "hub.db";
  const auto log = data.path / "hub.log";

  // 1. The shop sends most of the forms at once; as soon as 60 confirmations are back it sends
  //    the rest and the hub dies: the stream is then spread between the shop's socket, the
  //    hub's, the store queue, a commit in progress and confirmations on their way.
  Answers before;
  {
    HubProcess hub(SAFERLINK_HUB_BINARY, pki.dir(), db, log);
    TestDevice shop(pki.dir(), kShop, hub.address());
    shop.connect();
    send_forms(shop, before, 0, kForms - kSentAtTheKill);
    REQUIRE(await_confirmations(shop, before, kConfirmedBeforeKill, 20s));
    send_forms(shop, before, kForms - kSentAtTheKill, kForms);
    hub.kill(SIGKILL);
    take_what_arrived(shop, before);
  }
  REQUIRE(before.confirmed.size() >= kConfirmedBeforeKill);
  for (const auto& [id, c] : before.confirmed) {
    CAPTURE(id);
    CHECK_FALSE(c.duplicate());
    CHECK_FALSE(c.confirmation().empty());
  }

  // 2. The dead hub's database, as it was left: every confirmed form is there, exactly once.
  const auto on_disk = stored_forms(db);
  {
    SQLite::Database check(db.string(), SQLite::OPEN_READONLY);
    for (const auto& [id, c] : before.confirmed) {
      CAPTURE(id);
      check_stored_once(check, id);
    }
  }
  for (const auto& [id, stored] : on_disk) {
    CAPTURE(id);
    CHECK(id.rfind("crash-form-", 0) == 0);
  }
  // Forms sent a moment before the kill cannot all have been stored: without unconfirmed
  // forms the retries below would prove nothing about them.
  CHECK(on_disk.size() < static_cast<std::size_t>(kForms));
  MESSAGE("sent " << kForms << ", confirmed and seen before the kill " << before.confirmed.size()
                  << ", on disk after the kill " << on_disk.size());

  // 3. A new hub on the same database; the shop, not knowing which of the unconfirmed ones
  //    made it, sends all of them again: same ids, same content.
  HubProcess restarted(SAFERLINK_HUB_BINARY, pki.dir(), db, log);
  Answers after;
  {
    TestDevice shop(pki.dir(), kShop, restarted.address());
    shop.connect();
    send_forms(shop, after, 0, kForms);
    REQUIRE(await_confirmations(shop, after, kForms, 30s));
  }
  for (int i = 0; i < kForms; ++i) {
    const std::string id = form_id_of(i);
    CAPTURE(id);
    const auto answer = after.confirmed.find(id);
    REQUIRE(answer != after.confirmed.end());
    // A form that was on disk is a duplicate; one that was not is stored now.
    CHECK(answer->second.duplicate() == (on_disk.count(id) == 1));
    const auto first = before.confirmed.find(id);
    if (first != before.confirmed.end()) {
      CHECK(answer->second.confirmation() == first->second.confirmation());
    }
  }

  // 4. Exactly one row per form, each with its own content, each audited once as created;
  //    those stored before the crash kept their original reception time.
  const auto final_forms = stored_forms(db);
  CHECK(final_forms.size() == static_cast<std::size_t>(kForms));
  SQLite::Database check(db.string(), SQLite::OPEN_READONLY);
  CHECK(check.execAndGet("SELECT count(*) FROM incident_forms").getInt() == kForms);
  for (int i = 0; i < kForms; ++i) {
    const std::string id = form_id_of(i);
    CAPTURE(id);
    check_stored_once(check, id);
    const auto stored = final_forms.find(id);
    REQUIRE(stored != final_forms.end());
    CHECK(stored->second.description == form_envelope(i).form().description());
    CHECK(stored->second.value_pence == 100 + i);
    const auto was = on_disk.find(id);
    if (was != on_disk.end()) CHECK(stored->second.received_at_ms == was->second.received_at_ms);
  }
  const auto chain = server::audit::verify(check);
  INFO("first bad row: ", chain.first_bad.value_or(0), ", ", chain.reason);
  CHECK(chain.ok);
}

TEST_CASE("a hub SIGKILLed twice while writing forms leaves an audit chain that verifies after "
          "restart") {
  TestPki pki;
  pki.issue(Role::shop, "chatham", kShop, "Boots Chatham");
  TempDir data;
  const auto db = data.path / "hub.db";
  const auto log = data.path / "hub.log";

  // Two lives of the hub, each killed mid-stream: the second appends to the chain the first
  // left behind, after whatever the first had not committed was lost.
  std::size_t confirmed = 0;
  for (int life = 0; life < 2; ++life) {
    HubProcess hub(SAFERLINK_HUB_BINARY, pki.dir(), db, log);
    TestDevice shop(pki.dir(), kShop, hub.address());
    shop.connect();
    Answers answers;
    send_forms(shop, answers, life * 1000, life * 1000 + 150);
    REQUIRE(await_confirmations(shop, answers, 30, 20s));
    hub.kill(SIGKILL);
    take_what_arrived(shop, answers);
    confirmed += answers.confirmed.size();
    const auto left_behind = verify_audit(db);
    CAPTURE(life);
    INFO("first bad row: ", left_behind.first_bad.value_or(0), ", ", left_behind.reason);
    CHECK(left_behind.ok);
    CHECK(left_behind.rows >= static_cast<std::int64_t>(confirmed));
  }

  // A third start proves the hub opens the database, then the chain is checked as left.
  HubProcess third(SAFERLINK_HUB_BINARY, pki.dir(), db, log);
  third.kill(SIGKILL);
  SQLite::Database check(db.string(), SQLite::OPEN_READONLY);
  const auto verification = server::audit::verify(check);
  INFO("first bad row: ", verification.first_bad.value_or(0), ", ", verification.reason);
  CHECK(verification.ok);
  const std::int64_t rows = check.execAndGet("SELECT count(*) FROM audit_log").getInt64();
  CHECK(verification.rows == rows);
  const std::int64_t forms = check.execAndGet("SELECT count(*) FROM incident_forms").getInt64();
  CHECK(forms >= static_cast<std::int64_t>(confirmed));
  CHECK(rows >= forms);  // one "create form" row each, at least
  // Both lives wrote to the chain.
  CHECK(check.execAndGet("SELECT count(*) FROM incident_forms WHERE form_id < 'crash-form-1000'")
            .getInt() >= 30);
  CHECK(check.execAndGet("SELECT count(*) FROM incident_forms WHERE form_id >= 'crash-form-1000'")
            .getInt() >= 30);
}
