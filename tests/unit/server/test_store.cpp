#include "server/store.hpp"

#include <doctest/doctest.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <stdlib.h>  // mkdtemp

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using saferlink::server::Store;
namespace fs = std::filesystem;

// A directory of its own per test, removed with everything in it (db, -wal, -shm).
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "saferlink-store-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Holds the store thread inside a job until released, so that what is submitted meanwhile
// queues up and forms the next batch.
class Gate {
 public:
  Gate() : released_(release_.get_future().share()) {}
  ~Gate() { open(); }  // never leave the store thread stuck if a test bails out
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  Store::Job job() {
    return [this](SQLite::Database&) {
      started_.set_value();
      released_.wait();
    };
  }
  void wait_until_holding() { started_.get_future().wait(); }
  void open() {
    if (!opened_.exchange(true)) release_.set_value();
  }

 private:
  std::promise<void> started_;
  std::promise<void> release_;
  std::shared_future<void> released_;
  std::atomic<bool> opened_{false};
};

// Counts completions and lets the test wait for the last one.
class Completions {
 public:
  explicit Completions(int expected) : remaining_(expected) {}
  Store::Done done(std::exception_ptr* slot = nullptr) {
    return [this, slot](std::exception_ptr error) {
      if (slot != nullptr) *slot = error;
      if (--remaining_ == 0) all_.set_value();
    };
  }
  // Like done(), but first runs `check` on the store thread.
  Store::Done done_after(std::function<void(std::exception_ptr)> check) {
    return [this, check = std::move(check)](std::exception_ptr error) {
      check(error);
      if (--remaining_ == 0) all_.set_value();
    };
  }
  bool wait() {
    return all_.get_future().wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  }

 private:
  std::atomic<int> remaining_;
  std::promise<void> all_;
};

void create_scratch_table(Store& store) {
  store.run_sync([](SQLite::Database& db) { db.exec("CREATE TABLE t (k INTEGER PRIMARY KEY)"); });
}

Store::Job insert_key(int key) {
  return [key](SQLite::Database& db) {
    SQLite::Statement insert(db, "INSERT INTO t (k) VALUES (?)");
    insert.bind(1, key);
    insert.exec();
  };
}

std::vector<int> keys(SQLite::Database& db) {
  std::vector<int> out;
  SQLite::Statement select(db, "SELECT k FROM t ORDER BY k");
  while (select.executeStep()) out.push_back(select.getColumn(0).getInt());
  return out;
}

std::vector<int> keys(Store& store) {
  std::vector<int> out;
  store.run_sync([&out](SQLite::Database& db) { out = keys(db); });
  return out;
}

int pragma_int(SQLite::Database& db, const char* pragma) {
  return db.execAndGet(std::string("PRAGMA ") + pragma).getInt();
}

bool table_exists(SQLite::Database& db, const char* name) { return db.tableExists(name); }

std::string message_of(std::exception_ptr error) {
  try {
    if (error) std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

template <typename F>
std::string construction_error(F&& make) {
  try {
    make();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

// The schema exactly as migration 1 shipped it: a fixture for databases written by that
// release. Do not update it when the schema changes; add a fixture for the new version.
constexpr const char* kSchemaVersion1 = R"sql(
CREATE TABLE alerts (
  alert_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, device_seq INTEGER NOT NULL,
  member TEXT NOT NULL, town TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('actual', 'exercise', 'test')),
  severity TEXT NOT NULL, note TEXT NOT NULL DEFAULT '', pressed_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL, accepted_at_ms INTEGER NOT NULL, cancelled_at_ms INTEGER,
  cancel_reason TEXT NOT NULL DEFAULT '');
CREATE INDEX alerts_accepted_at ON alerts (accepted_at_ms);
CREATE TABLE alert_events (
  id INTEGER PRIMARY KEY, alert_id TEXT NOT NULL REFERENCES alerts (alert_id),
  kind TEXT NOT NULL, by_id TEXT NOT NULL, by_role TEXT NOT NULL, by_town TEXT NOT NULL,
  at_ms INTEGER NOT NULL, round INTEGER NOT NULL DEFAULT 0);
CREATE INDEX alert_events_alert_id ON alert_events (alert_id);
PRAGMA user_version = 1;
)sql";

}  // namespace

TEST_SUITE("store") {

TEST_CASE("the store migrates a new in-memory database to the latest schema version") {
  REQUIRE(Store::latest_schema_version() >= 1);
  Store store({":memory:"});
  store.run_sync([](SQLite::Database& db) {
    CHECK(pragma_int(db, "user_version") == Store::latest_schema_version());
    CHECK(table_exists(db, "alerts"));
    CHECK(table_exists(db, "alert_events"));
  });
}

TEST_CASE("migrating an up-to-date database again changes nothing") {
  SQLite::Database db(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  saferlink::server::migrate(db);
  const int schema_cookie = pragma_int(db, "schema_version");  // bumped by any DDL
  saferlink::server::migrate(db);
  CHECK(pragma_int(db, "user_version") == Store::latest_schema_version());
  CHECK(pragma_int(db, "schema_version") == schema_cookie);
}

TEST_CASE("the store refuses a database with a newer schema, naming both versions") {
  TempDir dir;
  const std::string path = dir.file("hub.db");
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("PRAGMA user_version = 999");
  }
  const std::string error = construction_error([&] { Store store({path}); });
  INFO("error: ", error);
  CHECK(error.find(path) != std::string::npos);
  CHECK(error.find("schema version 999") != std::string::npos);
  CHECK(error.find("only up to " + std::to_string(Store::latest_schema_version())) !=
        std::string::npos);
  CHECK(error.find("upgrade saferlink-hub") != std::string::npos);

  SQLite::Database db(path, SQLite::OPEN_READONLY);
  CHECK(pragma_int(db, "user_version") == 999);
  CHECK_FALSE(table_exists(db, "alerts"));
}

TEST_CASE("reopening a migrated file database keeps its rows and runs no migration") {
  TempDir dir;
  const std::string path = dir.file("hub.db");
  int schema_cookie = 0;
  {
    Store store({path});
    create_scratch_table(store);
    store.run_sync(insert_key(7));
    store.run_sync([&](SQLite::Database& db) { schema_cookie = pragma_int(db, "schema_version"); });
  }
  Store store({path});
  CHECK(keys(store) == std::vector<int>{7});
  store.run_sync([&](SQLite::Database& db) {
    CHECK(pragma_int(db, "user_version") == Store::latest_schema_version());
    CHECK(pragma_int(db, "schema_version") == schema_cookie);
  });
}

TEST_CASE("a database written at schema version 1 opens with its alerts and events kept") {
  TempDir dir;
  const std::string path = dir.file("v1.db");
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec(kSchemaVersion1);
    db.exec(
        "INSERT INTO alerts (alert_id, device_id, device_seq, member, town, status, severity, "
        "pressed_at_ms, expires_at_ms, accepted_at_ms) "
        "VALUES ('dev-1:4', 'dev-1', 4, 'ana', 'Lagos', 'actual', 'extreme', 10, 20, 11)");
    db.exec(
        "INSERT INTO alert_events (alert_id, kind, by_id, by_role, by_town, at_ms) "
        "VALUES ('dev-1:4', 'acknowledged', 'resp-2', 'responder', 'Lagos', 12)");
  }
  Store store({path});
  store.run_sync([](SQLite::Database& db) {
    CHECK(pragma_int(db, "user_version") == Store::latest_schema_version());
    CHECK(db.execAndGet("SELECT member FROM alerts WHERE alert_id = 'dev-1:4'").getString() ==
          "ana");
    CHECK(db.execAndGet("SELECT kind FROM alert_events WHERE alert_id = 'dev-1:4'").getString() ==
          "acknowledged");
  });
}

TEST_CASE("a migration that fails leaves the database at its previous version") {
  TempDir dir;
  const std::string path = dir.file("clash.db");
  {
    // Migration 1 creates alerts, then alert_events, which already exists here.
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE alert_events (x INTEGER)");
  }
  const std::string error = construction_error([&] { Store store({path}); });
  INFO("error: ", error);
  CHECK(error.find(path) != std::string::npos);
  CHECK(error.find("schema version 1") != std::string::npos);
  CHECK(error.find("alert_events") != std::string::npos);

  SQLite::Database db(path, SQLite::OPEN_READONLY);
  CHECK(pragma_int(db, "user_version") == 0);
  CHECK_FALSE(table_exists(db, "alerts"));  // rolled back with the failed migration
}

TEST_CASE("the store refuses a path it cannot open, naming the path") {
  TempDir dir;
  const std::string path = dir.file("missing-dir/hub.db");
  const std::string error = construction_error([&] { Store store({path}); });
  INFO("error: ", error);
  CHECK(error.find("cannot open database " + path) != std::string::npos);
}

TEST_CASE("the store refuses a file that is not a database, naming the path") {
  TempDir dir;
  const std::string path = dir.file("notes.txt");
  {
    std::ofstream out(path);
    for (int i = 0; i < 200; ++i) out << "these are not the bytes of an SQLite database\n";
  }
  const std::string error = construction_error([&] { Store store({path}); });
  INFO("error: ", error);
  CHECK(error.find(path) != std::string::npos);
  CHECK(error.find("not a database") != std::string::npos);
}

TEST_CASE("a file database runs in WAL mode with synchronous FULL and foreign keys on") {
  TempDir dir;
  Store store({dir.file("hub.db")});
  store.run_sync([](SQLite::Database& db) {
    CHECK(db.execAndGet("PRAGMA journal_mode").getString() == "wal");
    CHECK(pragma_int(db, "synchronous") == 2);  // FULL
    CHECK(pragma_int(db, "foreign_keys") == 1);
    CHECK(pragma_int(db, "busy_timeout") == 5000);
  });
}

TEST_CASE("jobs submitted while the store is busy share one commit, each visible at completion") {
  TempDir dir;
  const std::string path = dir.file("hub.db");
  Store store({path});
  create_scratch_table(store);
  SQLite::Database reader(path, SQLite::OPEN_READONLY);  // used on the store thread only

  constexpr int kJobs = 200;
  std::vector<char> visible_at_completion(kJobs, 0);
  std::vector<std::exception_ptr> errors(kJobs);
  Completions completions(kJobs);
  const std::uint64_t commits_before = store.commits();
  const std::uint64_t jobs_before = store.jobs_done();

  Gate gate;
  store.submit(gate.job(), nullptr);
  gate.wait_until_holding();
  std::thread submitter([&] {
    for (int i = 0; i < kJobs; ++i) {
      store.submit(insert_key(i), completions.done_after([&, i](std::exception_ptr error) {
        errors[i] = error;
        SQLite::Statement select(reader, "SELECT count(*) FROM t WHERE k = ?");
        select.bind(1, i);
        select.executeStep();
        visible_at_completion[i] = select.getColumn(0).getInt() == 1 ? 1 : 0;
      }));
    }
  });
  submitter.join();
  gate.open();
  REQUIRE(completions.wait());

  CHECK(store.commits() - commits_before == 2);  // the gate's batch, then all 200 together
  CHECK(store.jobs_done() - jobs_before == kJobs + 1);
  for (int i = 0; i < kJobs; ++i) {
    INFO("job ", i);
    CHECK_FALSE(errors[i]);
    CHECK(visible_at_completion[i] == 1);
  }
  CHECK(keys(store).size() == kJobs);
}

TEST_CASE("a batch never holds more than max_batch jobs") {
  Store store({":memory:", 50});
  create_scratch_table(store);
  Completions completions(200);
  const std::uint64_t commits_before = store.commits();
  Gate gate;
  store.submit(gate.job(), nullptr);
  gate.wait_until_holding();
  for (int i = 0; i < 200; ++i) store.submit(insert_key(i), completions.done());
  gate.open();
  REQUIRE(completions.wait());
  CHECK(store.commits() - commits_before == 1 + 200 / 50);
  CHECK(keys(store).size() == 200);
}

TEST_CASE("a job that throws is rolled back alone while the rest of its batch commits") {
  Store store({":memory:"});
  create_scratch_table(store);
  const std::uint64_t commits_before = store.commits();
  const std::uint64_t jobs_before = store.jobs_done();

  std::vector<std::exception_ptr> errors(5);
  Completions completions(5);
  Gate gate;
  store.submit(gate.job(), nullptr);
  gate.wait_until_holding();
  store.submit(insert_key(1), completions.done(&errors[0]));
  store.submit(
      [](SQLite::Database& db) {
        insert_key(2)(db);
        throw std::runtime_error("job 2 failed on purpose");
      },
      completions.done(&errors[1]));
  store.submit(insert_key(3), completions.done(&errors[2]));
  store.submit(
      [](SQLite::Database& db) {
        insert_key(4)(db);
        insert_key(1)(db);  // primary key clash: SQLite throws
      },
      completions.done(&errors[3]));
  store.submit(insert_key(5), completions.done(&errors[4]));
  gate.open();
  REQUIRE(completions.wait());

  CHECK(store.commits() - commits_before == 2);  // the five shared one transaction
  CHECK(store.jobs_done() - jobs_before == 6);
  CHECK_FALSE(errors[0]);
  CHECK(message_of(errors[1]) == "job 2 failed on purpose");
  CHECK_FALSE(errors[2]);
  CHECK_THROWS_AS(std::rethrow_exception(errors[3]), SQLite::Exception);
  CHECK_FALSE(errors[4]);
  CHECK(keys(store) == std::vector<int>{1, 3, 5});
}

TEST_CASE("a completion is called only after its commit, when another connection sees the row") {
  TempDir dir;
  const std::string path = dir.file("hub.db");
  Store store({path});
  create_scratch_table(store);

  auto rows_seen_by_another_connection = [&path] {
    SQLite::Database other(path, SQLite::OPEN_READONLY);
    return other.execAndGet("SELECT count(*) FROM t WHERE k = 42").getInt();
  };
  std::optional<int> seen_inside_job;
  std::optional<int> seen_at_completion;
  std::exception_ptr error;
  Completions completions(1);
  store.submit(
      [&](SQLite::Database& db) {
        insert_key(42)(db);
        seen_inside_job = rows_seen_by_another_connection();
      },
      completions.done_after([&](std::exception_ptr e) {
        error = e;
        seen_at_completion = rows_seen_by_another_connection();
      }));
  REQUIRE(completions.wait());
  CHECK_FALSE(error);
  CHECK(seen_inside_job == 0);  // not committed yet: the check below can tell the difference
  CHECK(seen_at_completion == 1);
}

TEST_CASE("a failed COMMIT fails every job of its batch and keeps none of their writes") {
  Store store({":memory:"});
  create_scratch_table(store);
  store.run_sync([](SQLite::Database& db) {
    db.exec("CREATE TABLE parent (id INTEGER PRIMARY KEY)");
    // Deferred: the violation is only detected by COMMIT.
    db.exec(
        "CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) "
        "DEFERRABLE INITIALLY DEFERRED)");
  });
  const std::uint64_t commits_before = store.commits();

  std::vector<std::exception_ptr> errors(3);
  Completions completions(3);
  Gate gate;
  store.submit(gate.job(), nullptr);
  gate.wait_until_holding();
  store.submit(insert_key(1), completions.done(&errors[0]));
  store.submit([](SQLite::Database& db) { db.exec("INSERT INTO child VALUES (99)"); },
               completions.done(&errors[1]));
  store.submit(insert_key(3), completions.done(&errors[2]));
  gate.open();
  REQUIRE(completions.wait());

  for (const auto& error : errors) {
    CHECK(message_of(error).find("FOREIGN KEY") != std::string::npos);
  }
  CHECK(store.commits() - commits_before == 1);  // only the gate's batch
  CHECK(keys(store).empty());
  store.run_sync([](SQLite::Database& db) {
    CHECK(db.execAndGet("SELECT count(*) FROM child").getInt() == 0);
  });

  store.run_sync(insert_key(4));  // the store carries on with a fresh transaction
  CHECK(keys(store) == std::vector<int>{4});
}

TEST_CASE("destroying the store first runs every job submitted before") {
  TempDir dir;
  const std::string path = dir.file("hub.db");
  constexpr int kJobs = 100;
  std::atomic<int> succeeded{0};
  Gate gate;
  std::optional<Store> store(std::in_place, Store::Options{path});
  create_scratch_table(*store);
  store->submit(gate.job(), nullptr);
  gate.wait_until_holding();
  for (int i = 0; i < kJobs; ++i) {
    store->submit(insert_key(i), [&succeeded](std::exception_ptr error) {
      if (!error) ++succeeded;
    });
  }
  // Open the gate only once the destructor is (very likely) already waiting, so that it
  // finds the jobs still queued.
  std::thread opener([&gate] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    gate.open();
  });
  store.reset();
  opener.join();

  CHECK(succeeded == kJobs);
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  CHECK(keys(db).size() == kJobs);
}

TEST_CASE("run_sync returns after the commit and rethrows the job's exception") {
  Store store({":memory:"});
  create_scratch_table(store);
  store.run_sync(insert_key(1));
  CHECK(keys(store) == std::vector<int>{1});
  CHECK_THROWS_WITH_AS(
      store.run_sync([](SQLite::Database&) { throw std::runtime_error("nope"); }), "nope",
      std::runtime_error);
}

TEST_CASE("run_sync from inside a job is refused instead of waiting forever") {
  Store store({":memory:"});
  std::string refusal;
  store.run_sync([&](SQLite::Database&) {
    try {
      store.run_sync([](SQLite::Database&) {});
    } catch (const std::logic_error& e) {
      refusal = e.what();
    }
  });
  CHECK(refusal.find("store thread") != std::string::npos);
}

}  // TEST_SUITE
