// chat_json: the JSON readers chat_bridge.cpp and chat_parser.cpp share (internal,
// not part of the bridge's API). Every failure is a std::invalid_argument that
// names the field: the JSON comes from the caller.

#pragma once

#include "json.h"

#include <stdexcept>
#include <string>

namespace lln_json {

// common_json reports every error as common_json_error (a runtime_error); a
// request or params blob that does not parse is the caller's mistake.
inline common_json parse_json_arg(const std::string & text, const char * what) {
    try {
        return common_json::parse(text);
    } catch (const std::exception & e) {
        throw std::invalid_argument(std::string(what) + " is not valid JSON: " + e.what());
    }
}

// Typed field readers: common's own accessors would throw an anonymous
// type_error ("type must be boolean, but is string"), without the key name.
// null counts as absent, as it does for OpenAI clients.
inline bool has_field(const common_json & obj, const char * key) {
    return obj.contains(key) && !obj.at(key).is_null();
}

inline bool get_bool(const common_json & obj, const char * key, bool def) {
    if (!has_field(obj, key)) {
        return def;
    }
    const auto & v = obj.at(key);
    if (!v.is_boolean()) {
        throw std::invalid_argument(std::string("\"") + key + "\" must be a boolean, got " + v.dump());
    }
    return v.get<bool>();
}

inline std::string get_string(const common_json & obj, const char * key, const std::string & def) {
    if (!has_field(obj, key)) {
        return def;
    }
    const auto & v = obj.at(key);
    if (!v.is_string()) {
        throw std::invalid_argument(std::string("\"") + key + "\" must be a string, got " + v.dump());
    }
    return v.get<std::string>();
}

}  // namespace lln_json
