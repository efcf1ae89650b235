// chat_parser: the output half of chat_bridge.h (lln_chat_parser_*): model
// output back into content, reasoning and tool calls. What each function wraps:
//   lln_chat_parser_init      common_peg_arena::load
//   lln_chat_parser_parse     common_chat_parse
//   lln_chat_parser_match_end common_chat_peg_parse's match, without the mapping

#include "chat_bridge.h"
#include "chat_json.h"

#include "chat.h"
#include "json.h"
#include "peg-parser.h"

#include <algorithm>
#include <stdexcept>
#include <string>

using lln_json::get_string;
using lln_json::parse_json_arg;

// Loading the serialized parser costs far more than one parse (figures in
// docs/design/chat.md), and a stream parses its output many times: hence a
// handle that loads it once.
struct lln_chat_parser {
    common_chat_parser_params params;
};

lln_chat_parser * lln_chat_parser_init(const std::string & params_json) {
    const common_json p = parse_json_arg(params_json, "chat parser params");
    if (!p.is_object()) {
        throw std::invalid_argument("chat parser params must be a JSON object");
    }
    // required, not defaulted: common silently falls back to a content-only
    // parser for an empty one, so a caller passing the wrong blob would see
    // plausible text with every tool call gone
    for (const char * key : {"format", "generation_prompt", "parser"}) {
        if (!p.contains(key)) {
            throw std::invalid_argument(std::string("chat parser params need \"") + key +
                                        "\" (pass what lln_chat_apply returned)");
        }
    }
    const auto & format = p.at("format");
    // the format picks the AST mapper (gemma4, minimax-m3 have their own)
    if (!format.is_number_integer() || format.get<int>() < 0 || format.get<int>() >= COMMON_CHAT_FORMAT_COUNT) {
        throw std::invalid_argument("\"format\" is not a chat format id: " + format.dump());
    }

    auto * parser = new lln_chat_parser();
    try {
        parser->params.format            = (common_chat_format) format.get<int>();
        parser->params.generation_prompt = get_string(p, "generation_prompt", "");
        const std::string serialized     = get_string(p, "parser", "");
        if (!serialized.empty()) {
            try {
                parser->params.parser.load(serialized);
            } catch (const std::exception & e) {
                throw std::invalid_argument(std::string("\"parser\" is not a serialized chat parser: ") + e.what());
            }
        }
    } catch (...) {
        delete parser;
        throw;
    }
    return parser;
}

void lln_chat_parser_free(lln_chat_parser * parser) {
    delete parser;
}

std::string lln_chat_parser_parse(const lln_chat_parser * parser, const std::string & text, bool is_partial) {
    if (parser == nullptr) {
        throw std::invalid_argument("chat parser handle is NULL");
    }
    common_chat_msg msg;
    try {
        msg = common_chat_parse(text, is_partial, parser->params);
    } catch (const std::exception & e) {
        throw std::runtime_error(e.what());
    }

    // built here rather than with msg.to_json_oaicompat(): that one drops
    // empty fields and ids, and a fixed shape is simpler for the caller
    common_json tool_calls = common_json::array();
    for (const auto & tc : msg.tool_calls) {
        tool_calls.push_back({
            {"type",     "function"},
            {"id",       tc.id},
            {"function", {
                {"name",      tc.name},
                {"arguments", tc.arguments},
            }},
        });
    }
    common_json out = common_json::object();
    out["role"]              = "assistant";
    out["content"]           = msg.content;
    out["reasoning_content"] = msg.reasoning_content;
    out["tool_calls"]        = tool_calls;
    // dump_safe: the model may stop in the middle of a UTF-8 sequence
    return out.dump_safe();
}

size_t lln_chat_parser_match_end(const lln_chat_parser * parser, const std::string & text) {
    if (parser == nullptr) {
        throw std::invalid_argument("chat parser handle is NULL");
    }
    const common_peg_arena & arena = parser->params.parser;
    if (arena.empty()) {
        return text.size();  // common reads the output as content only: all of it matches
    }
    // as common_chat_peg_parse matches: after the generation prompt, lenient
    const std::string & prompt = parser->params.generation_prompt;
    const std::string   input  = prompt + text;
    common_peg_parse_context ctx(input, COMMON_PEG_PARSE_FLAG_LENIENT);
    const auto result = arena.parse(ctx);
    if (!result.fail()) {
        return text.size();
    }
    return result.end > prompt.size() ? std::min(result.end - prompt.size(), text.size()) : 0;
}
