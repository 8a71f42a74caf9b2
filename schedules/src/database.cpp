#include <convgen/schedules/database.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace convgen::schedules {

// File format: {"format": "convgen-schedules", "version": 1,
//               "targets": {"<target>": {"<signature>": {"<parameter>": <int>, ...}, ...}}}
ScheduleDatabase ScheduleDatabase::load(const std::string& path) {
    std::ifstream file(path);
    if (!file) throw std::runtime_error(fmt::format("{}: cannot open the schedule database", path));
    nlohmann::json document;
    try {
        file >> document;
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(fmt::format("{}: not valid JSON: {}", path, e.what()));
    }
    auto fail = [&](const std::string& what) {
        throw std::runtime_error(fmt::format("{}: {}", path, what));
    };
    // (json::value would throw its own type_error on a "format" that is not a string.)
    if (!document.is_object() || !document.contains("format") || document["format"] != "convgen-schedules") {
        fail("not a convgen schedule database (expected an object with \"format\": \"convgen-schedules\")");
    }
    if (!document.contains("version") || document["version"] != 1) fail("unsupported version (expected 1)");
    if (!document.contains("targets") || !document["targets"].is_object()) fail("missing \"targets\" object");
    ScheduleDatabase database;
    for (const auto& [target, signatures] : document["targets"].items()) {
        if (!signatures.is_object()) fail(fmt::format("target '{}': expected an object of signatures", target));
        for (const auto& [signature, parameters] : signatures.items()) {
            if (!parameters.is_object()) fail(fmt::format("'{}' / '{}': expected an object", target, signature));
            ScheduleParameters values;
            for (const auto& [name, value] : parameters.items()) {
                if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > 1 << 20) {
                    fail(fmt::format("'{}' / '{}': parameter '{}' must be an integer in [0, 2^20], found {}", target,
                                     signature, name, value.dump()));
                }
                values[name] = value.get<int>();
            }
            database.insert(target, signature, values);
        }
    }
    return database;
}

std::optional<ScheduleParameters> ScheduleDatabase::find(const std::string& target, const std::string& signature) const {
    const auto t = entries_.find(target);
    if (t == entries_.end()) return std::nullopt;
    const auto s = t->second.find(signature);
    if (s == t->second.end()) return std::nullopt;
    return s->second;
}

void ScheduleDatabase::insert(const std::string& target, const std::string& signature, ScheduleParameters parameters) {
    entries_[target][signature] = std::move(parameters);
}

size_t ScheduleDatabase::size() const {
    size_t count = 0;
    for (const auto& [target, signatures] : entries_) count += signatures.size();
    return count;
}

void ScheduleDatabase::save(const std::string& path) const {
    nlohmann::json document = {{"format", "convgen-schedules"}, {"version", 1}, {"targets", nlohmann::json::object()}};
    for (const auto& [target, signatures] : entries_) {
        for (const auto& [signature, parameters] : signatures) document["targets"][target][signature] = parameters;
    }
    const std::string temporary = path + ".tmp";
    {
        std::ofstream file(temporary, std::ios::trunc);
        file << document.dump(2) << "\n";
        file.flush();
        if (!file) throw std::runtime_error(fmt::format("{}: write failed", temporary));
    }
    if (std::rename(temporary.c_str(), path.c_str()) != 0) {
        std::remove(temporary.c_str());
        throw std::runtime_error(fmt::format("{}: cannot replace the schedule database", path));
    }
}

}  // namespace convgen::schedules
