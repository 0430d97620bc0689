// Store: one thread, group commit.
//
// A batch is run as
//
//   BEGIN IMMEDIATE
//     SAVEPOINT job; <job 1>; RELEASE job        -- or ROLLBACK TO job; RELEASE job if it threw
//     SAVEPOINT job; <job 2>; RELEASE job
//     ...
//   COMMIT                                       -- one fsync for the whole batch
//
// and only then are the completions called: nullptr for a job whose writes are now durable,
// the job's own exception for a job that threw (its writes were rolled back alone), or the
// COMMIT's exception for every other job when COMMIT fails (nothing of the batch is kept).
// When BEGIN itself fails, every job of the batch gets that error without having run.
//
// SQLite rolls back the whole transaction by itself on some errors (disk full, I/O error, out
// of memory), and a job could end it on purpose with COMMIT or ROLLBACK. After each job we
// check that the transaction is still open; if it is not, the jobs already run in this batch
// cannot be vouched for and fail, and the jobs not yet run go back to the front of the queue.
#include "server/store.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <sqlite3.h>

#include <cstdio>
#include <future>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace saferlink::server {
namespace {

constexpr int kBusyTimeoutMs = 5000;

bool in_transaction(SQLite::Database& db) { return sqlite3_get_autocommit(db.getHandle()) == 0; }

bool is_memory(const std::string& path) { return path.empty() || path == ":memory:"; }

std::unique_ptr<SQLite::Database> open_database(const std::string& path) {
  auto db = std::make_unique<SQLite::Database>(
      path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE, kBusyTimeoutMs);
  // journal_mode answers with the mode in force; a file database that cannot do WAL (e.g. a
  // network file system) would silently stay in rollback mode.
  const std::string mode = db->execAndGet("PRAGMA journal_mode = WAL").getString();
  if (!is_memory(path) && mode != "wal") {
    throw std::runtime_error("journal_mode is '" + mode + "' instead of 'wal'");
  }
  db->exec("PRAGMA synchronous = FULL");
  db->exec("PRAGMA foreign_keys = ON");
  return db;
}

void roll_back_quietly(SQLite::Database& db) {
  if (!in_transaction(db)) return;
  try {
    db.exec("ROLLBACK");
  } catch (const std::exception&) {
    // Nothing better to do: the caller reports the error that got us here.
  }
}

}  // namespace

Store::Store(Options options) : max_batch_(options.max_batch == 0 ? 1 : options.max_batch) {
  try {
    db_ = open_database(options.path);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot open database " + options.path + ": " + e.what());
  }
  migrate(*db_);  // throws std::runtime_error naming the database and what to do
  thread_ = std::thread([this] { thread_main(); });
}

Store::~Store() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void Store::submit(Job job, Done done) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(Item{std::move(job), std::move(done)});
  }
  wake_.notify_one();
}

void Store::run_sync(Job job) {
  if (std::this_thread::get_id() == thread_.get_id()) {
    throw std::logic_error("Store::run_sync called on the store thread (it would wait forever)");
  }
  // The failure crosses threads as plain values and is thrown anew on the caller's thread: an
  // exception object made on the store thread and released on another is invisible to the
  // thread sanitizer's view of libstdc++'s reference count.
  struct Failure {
    bool sqlite = false;
    int code = 0;
    std::string what;
  };
  std::promise<std::optional<Failure>> committed;
  auto result = committed.get_future();
  submit(std::move(job), [&committed](std::exception_ptr error) {
    if (!error) {
      committed.set_value(std::nullopt);
      return;
    }
    Failure failure;
    try {
      std::rethrow_exception(error);
    } catch (const SQLite::Exception& e) {
      failure = {true, e.getErrorCode(), e.what()};
    } catch (const std::exception& e) {
      failure = {false, 0, e.what()};
    } catch (...) {
      failure = {false, 0, "unknown error"};
    }
    committed.set_value(std::move(failure));
  });
  if (auto failure = result.get()) {
    if (failure->sqlite) throw SQLite::Exception(failure->what, failure->code);
    throw std::runtime_error(failure->what);
  }
}

std::uint64_t Store::commits() const { return commits_.load(std::memory_order_relaxed); }

// Jobs whose completion has been called, successful or not.
std::uint64_t Store::jobs_done() const { return jobs_done_.load(std::memory_order_relaxed); }

void Store::thread_main() {
  for (;;) {
    std::deque<Item> batch;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything submitted has run
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    run_batch(batch);
  }
}

void Store::run_batch(std::deque<Item>& batch) {
  SQLite::Database& db = *db_;
  std::vector<Item> ran;                    // jobs run in this transaction, in order
  std::vector<std::exception_ptr> errors;   // errors[i]: why ran[i] failed, or nullptr
  std::exception_ptr batch_error;           // set when nothing of this batch is kept
  ran.reserve(batch.size());
  errors.reserve(batch.size());

  try {
    db.exec("BEGIN IMMEDIATE");
  } catch (...) {
    // Typically SQLITE_BUSY after the busy timeout: another process holds the write lock.
    // Fail the batch rather than retry forever; callers see the error and may resubmit.
    batch_error = std::current_exception();
    while (!batch.empty()) {
      ran.push_back(std::move(batch.front()));
      batch.pop_front();
      errors.push_back(nullptr);
    }
  }

  while (!batch_error && !batch.empty()) {
    ran.push_back(std::move(batch.front()));
    batch.pop_front();
    std::exception_ptr error;
    try {
      db.exec("SAVEPOINT job");
      try {
        ran.back().job(db);
        db.exec("RELEASE job");
      } catch (...) {
        error = std::current_exception();
        if (in_transaction(db)) {
          db.exec("ROLLBACK TO job");
          db.exec("RELEASE job");
        }
      }
    } catch (...) {
      // SAVEPOINT or ROLLBACK TO failed: the transaction can no longer be trusted.
      if (!error) error = std::current_exception();
      batch_error = std::current_exception();
    }
    errors.push_back(error);
    if (!batch_error && !in_transaction(db)) {
      batch_error = std::make_exception_ptr(std::runtime_error(
          "the store transaction ended inside a job (rolled back by SQLite or by the job); "
          "nothing of its batch was kept"));
    }
  }

  if (!batch_error) {
    try {
      db.exec("COMMIT");
      commits_.fetch_add(1, std::memory_order_relaxed);
    } catch (...) {
      batch_error = std::current_exception();
    }
  }
  if (batch_error) {
    roll_back_quietly(db);
    if (!batch.empty()) {
      // Jobs not yet started: give them a fresh transaction rather than failing them.
      std::lock_guard lock(mutex_);
      while (!batch.empty()) {
        queue_.push_front(std::move(batch.back()));
        batch.pop_back();
      }
    }
  }

  for (std::size_t i = 0; i < ran.size(); ++i) {
    // A job that threw keeps its own error; the others share the batch's fate.
    std::exception_ptr outcome = errors[i] ? errors[i] : batch_error;
    jobs_done_.fetch_add(1, std::memory_order_relaxed);
    if (!ran[i].done) continue;
    try {
      ran[i].done(outcome);
    } catch (const std::exception& e) {
      // A completion must not take the store thread (and every later alert) down with it.
      std::fprintf(stderr, "saferlink store: a job completion threw (ignored): %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "saferlink store: a job completion threw (ignored)\n");
    }
  }
}

}  // namespace saferlink::server
