// Group version discovery (see discovery.h).
#include "base/kube/discovery.h"

#include <boost/json/parse.hpp>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace meshgate::kube {

namespace json = boost::json;

absl::StatusOr<std::vector<std::string>> ParseApiGroupVersions(const std::string& body) {
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  const json::object* group = !ec ? doc.if_object() : nullptr;
  const json::value* versions = group != nullptr ? group->if_contains("versions") : nullptr;
  if (versions == nullptr || !versions->is_array()) {
    return absl::InvalidArgumentError("APIGroup: no versions array");
  }
  std::vector<std::string> out;
  for (const json::value& v : versions->get_array()) {
    const json::object* o = v.if_object();
    const json::value* version = o != nullptr ? o->if_contains("version") : nullptr;
    if (version != nullptr && version->is_string()) out.emplace_back(version->get_string());
  }
  return out;
}

void ResolveGroupVersion(const std::shared_ptr<ApiClient>& client, const std::string& group,
                         std::vector<std::string> preferred,
                         std::function<void(absl::StatusOr<std::string>)> done) {
  const std::string path = absl::StrCat("/apis/", group);
  client->Get(path, [group, path, preferred = std::move(preferred), done = std::move(done)](Response r) {
    if (!r.error.empty()) return done(absl::UnavailableError(absl::StrCat(path, ": ", r.error)));
    if (r.status == 404) {
      return done(absl::NotFoundError(absl::StrCat("the server has no API group ", group, " (", path, " is 404)")));
    }
    if (r.status != 200) return done(absl::UnavailableError(absl::StrCat(path, ": HTTP ", r.status)));
    auto served = ParseApiGroupVersions(r.body);
    if (!served.ok()) return done(served.status());
    for (const std::string& want : preferred) {
      if (std::find(served->begin(), served->end(), want) != served->end()) return done(want);
    }
    done(absl::NotFoundError(absl::StrCat(group, " serves ", absl::StrJoin(*served, ", "), "; none of ",
                                          absl::StrJoin(preferred, ", "))));
  });
}

}  // namespace meshgate::kube
