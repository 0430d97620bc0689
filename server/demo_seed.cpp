#include "server/demo_seed.hpp"

#include "core/forms.hpp"
#include "server/intel_store.hpp"
#include "server/notice_store.hpp"

#include <SQLiteCpp/Database.h>

#include <array>
#include <random>
#include <stdexcept>

namespace saferlink::server {

namespace {

constexpr std::int64_t kDay = 86'400'000;

const std::array<const char*, 10> kShops{"Boots",   "WHSmith", "Superdrug", "Co-op",  "Greggs",
                                         "Primark", "TK Maxx", "Poundland", "Iceland", "Card Factory"};
const std::array<const char*, 16> kFirst{"Dean", "Kyle",  "Liam",   "Jade",  "Connor", "Stacey",
                                         "Wayne", "Tyler", "Shannon", "Craig", "Jordan", "Leanne",
                                         "Darren", "Ricky", "Kelly",  "Nathan"};
const std::array<const char*, 16> kLast{"Hollis", "Barton", "Pike",   "Marsh",  "Cole",  "Fenn",
                                        "Ridley", "Stone",  "Draper", "Oakes",  "Vance", "Kemp",
                                        "Porter", "Lyle",   "Wickes", "Gately"};
const std::array<const char*, 6> kBuild{"slim", "medium build", "stocky", "tall and thin",
                                        "short, heavy set", "athletic"};
const std::array<const char*, 6> kHair{"shaved head", "short brown hair", "ginger hair",
                                       "dark curly hair", "bleached blond hair", "grey hair"};
const std::array<const char*, 6> kClothes{"grey hooded top", "black puffer jacket",
                                          "navy tracksuit", "camouflage jacket",
                                          "red baseball cap", "white trainers and a rucksack"};
const std::array<const char*, 6> kGoods{"meat and cheese", "fragrance gift sets", "razor blades",
                                        "alcohol", "phone accessories", "cosmetics"};

struct Weighted {
  forms::Category category;
  int weight;
};
const std::array<Weighted, 6> kCategories{{{forms::Category::theft_from_shop, 60},
                                           {forms::Category::anti_social_behaviour, 14},
                                           {forms::Category::violence_or_threats, 10},
                                           {forms::Category::criminal_damage, 6},
                                           {forms::Category::fraud_or_counterfeit, 6},
                                           {forms::Category::other, 4}}};

Identity person(const std::string& id, Role role, const std::string& town,
                const std::string& member) {
  Identity who;
  who.id = id;
  who.role = role;
  who.town = town;
  who.member = member;
  return who;
}

void require(const intel::Status& status, const char* what) {
  if (!status.ok()) throw std::runtime_error(std::string("demo seed: ") + what + ": " + status.error);
}

void require(const notices::Outcome& outcome, const char* what) {
  if (!outcome.ok) throw std::runtime_error(std::string("demo seed: ") + what + ": " + outcome.refusal);
}

}  // namespace

SeedReport seed_demo(SQLite::Database& db, const std::vector<std::string>& towns,
                     std::int64_t now_ms, std::uint32_t seed) {
  SeedReport report;
  if (db.execAndGet("SELECT COUNT(*) FROM incident_forms").getInt64() > 0) return report;
  std::mt19937 rng(seed);
  auto pick = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  const Identity coord1 = person("coord-01", Role::coordinator, "all", "Safer Medway Partnership");
  const Identity coord2 = person("coord-02", Role::coordinator, "all", "Safer Medway Partnership");

  // Profiles: a few dozen, some violent.
  constexpr int kProfiles = 36;
  std::vector<std::int64_t> profiles;
  for (int i = 0; i < kProfiles; ++i) {
    intel::ProfileInput input;
    input.name = std::string(kFirst[pick(kFirst.size())]) + " " + kLast[pick(kLast.size())];
    if (pick(3) == 0) input.aliases.push_back(std::string("\"") + kLast[pick(kLast.size())] + "y\"");
    input.description = std::string(kBuild[pick(kBuild.size())]) + ", " +
                        kHair[pick(kHair.size())] + ", often seen in a " +
                        kClothes[pick(kClothes.size())];
    input.violent = pick(6) == 0;
    input.weapons = input.violent && pick(3) == 0;
    auto created = intel::create_profile(db, input, coord1, now_ms);
    require(created.status, "create profile");
    profiles.push_back(*created.value);
  }
  report.profiles = profiles.size();

  // Incidents over the last 18 months; offenders skewed so that a few are prolific.
  constexpr int kForms = 420;
  std::vector<std::vector<std::string>> forms_of(profiles.size());
  int total_weight = 0;
  for (const auto& c : kCategories) total_weight += c.weight;
  for (int i = 0; i < kForms; ++i) {
    const std::string town = towns[pick(towns.size())];
    const std::size_t shop = pick(kShops.size());
    std::string place = town;
    place[0] = static_cast<char>(place[0] - 'a' + 'A');
    const std::string member = std::string(kShops[shop]) + ", " + place;
    const Identity reporter =
        person("shop-" + town + "-" + std::to_string(shop + 1), Role::shop, town, member);
    forms::IncidentForm form;
    form.form_id = "demo-" + town + "-" + std::to_string(10000 + i);
    form.occurred_at_ms = now_ms - static_cast<std::int64_t>(pick(540)) * kDay -
                          static_cast<std::int64_t>(pick(86'400)) * 1000;
    form.town = town;
    form.premises = member;
    int roll = static_cast<int>(pick(static_cast<std::size_t>(total_weight)));
    for (const auto& c : kCategories) {
      if ((roll -= c.weight) < 0) {
        form.category = c.category;
        break;
      }
    }
    const char* goods = kGoods[pick(kGoods.size())];
    switch (form.category) {
      case forms::Category::theft_from_shop:
        form.description = std::string("Took ") + goods + " and left without paying.";
        form.goods = goods;
        form.value_pence = static_cast<std::int64_t>(500 + pick(20'000));
        break;
      case forms::Category::violence_or_threats:
        form.description = "Threatened staff when challenged at the door.";
        break;
      case forms::Category::anti_social_behaviour:
        form.description = "Abusive to customers near the entrance; refused to leave.";
        break;
      case forms::Category::criminal_damage:
        form.description = "Kicked and cracked the glass of the front door.";
        break;
      case forms::Category::fraud_or_counterfeit:
        form.description = "Tried to pay with a counterfeit twenty-pound note.";
        break;
      case forms::Category::other:
        form.description = "Suspicious behaviour around the tills; left when approached.";
        break;
    }
    if (pick(5) == 0) form.police_ref = "46/" + std::to_string(10000 + pick(89999)) + "/26";
    // Zipf-like: offender k with weight 1/(k+1); 30% of forms have no known offender.
    std::optional<std::size_t> offender;
    if (pick(10) >= 3) {
      std::discrete_distribution<std::size_t> zipf(profiles.size(), 0.0, 1.0,
                                                   [](double x) { return 1.0 / (x + 0.5); });
      offender = zipf(rng);
    } else {
      form.unknown_offenders.push_back(std::string(kBuild[pick(kBuild.size())]) + ", " +
                                       kClothes[pick(kClothes.size())]);
    }
    const auto inserted = intel::insert_form(db, form, reporter, now_ms);
    if (inserted.outcome != intel::InsertOutcome::inserted) {
      throw std::runtime_error("demo seed: form " + form.form_id + ": " + inserted.error);
    }
    ++report.forms;
    if (offender) {
      require(intel::link_form(db, form.form_id, profiles[*offender], coord1, now_ms), "link");
      forms_of[*offender].push_back(form.form_id);
    }
  }

  // Exclusion notices in every state, for the most prolific profiles.
  notices::Options options;
  options.towns = towns;
  auto propose = [&](std::size_t profile, std::int64_t at) {
    notices::Proposal proposal;
    proposal.profile_id = profiles[profile];
    proposal.conditions = "Not to enter any member premises in the partnership area.";
    proposal.towns = {"all"};
    const auto& cited = forms_of[profile];
    proposal.cited_forms.assign(cited.begin(), cited.begin() + std::min<std::ptrdiff_t>(3, std::ssize(cited)));
    auto outcome = notice_store::create(db, proposal, coord1, at, "persistent offending", options);
    require(outcome, "propose");
    ++report.notices;
    return outcome.next.id;
  };
  auto step = [&](std::int64_t id, notices::Action action, const Identity& by, std::int64_t at,
                  const char* reason) {
    require(notice_store::apply(db, id, action, by, at, reason, options), "notice transition");
  };
  std::size_t next = 0;
  auto take = [&]() {
    while (next < profiles.size() && forms_of[next].empty()) ++next;
    if (next >= profiles.size()) throw std::runtime_error("demo seed: too few linked profiles");
    return next++;
  };
  // Two proposed, two approved, four active (one due for review), one disputed, one expired,
  // one revoked.
  for (int i = 0; i < 2; ++i) propose(take(), now_ms - 2 * kDay);
  for (int i = 0; i < 2; ++i) {
    const auto id = propose(take(), now_ms - 5 * kDay);
    step(id, notices::Action::approve, coord2, now_ms - 4 * kDay, "board agreed");
  }
  for (int i = 0; i < 4; ++i) {
    const std::int64_t t0 = now_ms - (i == 0 ? 200 : 30 + 20 * i) * kDay;
    const auto id = propose(take(), t0);
    step(id, notices::Action::approve, coord2, t0 + kDay, "board agreed");
    step(id, notices::Action::serve, coord1, t0 + 2 * kDay, "served in person");
  }
  {
    const std::int64_t t0 = now_ms - 90 * kDay;
    const auto id = propose(take(), t0);
    step(id, notices::Action::approve, coord2, t0 + kDay, "board agreed");
    step(id, notices::Action::serve, coord1, t0 + 2 * kDay, "served by post");
    step(id, notices::Action::dispute, coord1, now_ms - 3 * kDay, "appeal received");
  }
  {
    const std::int64_t t0 = now_ms - 400 * kDay;
    const auto id = propose(take(), t0);
    step(id, notices::Action::approve, coord2, t0 + kDay, "board agreed");
    step(id, notices::Action::serve, coord1, t0 + 2 * kDay, "served in person");
  }
  {
    const std::int64_t t0 = now_ms - 60 * kDay;
    const auto id = propose(take(), t0);
    step(id, notices::Action::approve, coord2, t0 + kDay, "board agreed");
    step(id, notices::Action::serve, coord1, t0 + 2 * kDay, "served in person");
    step(id, notices::Action::revoke, coord2, now_ms - 10 * kDay, "appeal upheld by the board");
  }
  notice_store::run_due(db, now_ms, options);  // expires the old one, raises the review
  return report;
}

}  // namespace saferlink::server
