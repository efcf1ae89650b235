// chat_bridge: see chat_bridge.h for the API and its JSON shapes. This file
// holds the templates and rendering; chat_parser.cpp the output parser.
//
// Everything common-specific stays in these two files. What each function wraps:
//   lln_chat_templates_init   common_chat_templates_init
//   lln_chat_templates_source common_chat_templates_source
//   lln_chat_templates_caps   common_chat_templates_get_caps,
//                             common_chat_templates_support_enable_thinking
//   lln_chat_apply            common_chat_msgs_parse_oaicompat,
//                             common_chat_tools_parse_oaicompat,
//                             common_chat_tool_choice_parse_oaicompat,
//                             common_reasoning_format_from_name,
//                             common_chat_continuation_parse,
//                             common_chat_templates_apply (jinja path)
//   lln_json_schema_to_grammar json_schema_to_grammar

#include "chat_bridge.h"
#include "chat_json.h"

#include "chat.h"
#include "common.h"
#include "json-schema-to-grammar.h"
#include "json.h"
#include "llama.h"

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

struct lln_chat_templates {
    common_chat_templates_ptr ptr;
    bool has_tool_use = false;
};

namespace {

using lln_json::get_bool;
using lln_json::get_string;
using lln_json::has_field;
using lln_json::parse_json_arg;

// Rendering is not guaranteed reentrant: common (chat.cpp, and strftime_now in
// its Jinja runtime) formats dates with std::localtime, whose result lives in
// one process-wide static buffer, and common documents no thread safety.
// One lock for all handles, since that buffer is shared by all of them;
// rendering is short beside the decode that follows it, so one lock is enough.
std::mutex g_render_mutex;

const lln_chat_templates * check_handle(const lln_chat_templates * tmpls) {
    // common GGML_ASSERTs on NULL, which would abort the Python process
    if (tmpls == nullptr || !tmpls->ptr) {
        throw std::invalid_argument("chat templates handle is NULL");
    }
    return tmpls;
}

const char * trigger_type_name(common_grammar_trigger_type type) {
    switch (type) {
        case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN:        return "token";
        case COMMON_GRAMMAR_TRIGGER_TYPE_WORD:         return "word";
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN:      return "pattern";
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: return "pattern_full";
    }
    return "unknown";
}

// The regex common_sampler_init would hand to llama_sampler_init_grammar_lazy_patterns
// (common/sampling.cpp), so the caller passes it on as is and does no regex
// escaping or anchoring of its own that could drift from common's.
std::string trigger_pattern(const common_grammar_trigger & t) {
    switch (t.type) {
        case COMMON_GRAMMAR_TRIGGER_TYPE_WORD:
            return regex_escape(t.value);
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN:
            return t.value;
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL:
            if (t.value.empty()) {
                return "^$";
            }
            return (t.value.front() != '^' ? "^" : "") + t.value + (t.value.back() != '$' ? "$" : "");
        case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN:
            break;
    }
    return "";
}

// The default template source common_chat_templates_init parses: used only to
// recover the error message on failure (see lln_chat_templates_init).
std::string template_source_of(const llama_model * model, const std::string & override_src) {
    if (!override_src.empty()) {
        return override_src;
    }
    const char * src = llama_model_chat_template(model, /* name */ nullptr);
    return src ? src : "";
}

// json_schema_to_grammar already turns conversion errors into invalid_argument;
// this also covers the rest (e.g. a common_json type error on an odd schema).
// force_gbnf: with LLAMA_USE_LLGUIDANCE common would otherwise return an
// llguidance spec instead of GBNF, and llama's grammar sampler takes only GBNF.
std::string schema_to_gbnf(const common_json & schema) {
    try {
        return json_schema_to_grammar(schema, /* force_gbnf = */ true);
    } catch (const std::invalid_argument &) {
        throw;
    } catch (const std::exception & e) {
        throw std::invalid_argument(std::string("JSON schema conversion failed: ") + e.what());
    }
}

}  // namespace

lln_chat_templates * lln_chat_templates_init(const llama_model * model, const std::string & template_override) {
    if (model == nullptr && template_override.empty()) {
        // common GGML_ASSERTs here
        throw std::invalid_argument("a model or a template source is required");
    }
    auto * tmpls = new lln_chat_templates();
    try {
        tmpls->ptr = common_chat_templates_init(model, template_override);
    } catch (const std::exception &) {
        delete tmpls;
        // common rethrows with `throw e;` on a `const std::exception &`, which
        // slices the exception to a bare std::exception whose what() is just
        // "std::exception". Parse the source again to get the real message.
        const std::string src = template_source_of(model, template_override);
        try {
            common_chat_template probe(src, "", "");
        } catch (const std::exception & e) {
            throw std::invalid_argument(std::string("invalid chat template: ") + e.what());
        }
        throw std::invalid_argument("invalid chat template");
    }
    // common keeps a tool_use variant only if it parsed; it logs and drops it otherwise
    tmpls->has_tool_use = !common_chat_templates_source(tmpls->ptr.get(), "tool_use").empty();
    return tmpls;
}

void lln_chat_templates_free(lln_chat_templates * tmpls) {
    delete tmpls;
}

std::string lln_chat_templates_source(const lln_chat_templates * tmpls, const std::string & variant) {
    check_handle(tmpls);
    if (!variant.empty() && variant != "tool_use") {
        // common only logs unknown variants and returns the default template
        throw std::invalid_argument("unknown template variant \"" + variant + "\" (expected \"\" or \"tool_use\")");
    }
    return common_chat_templates_source(tmpls->ptr.get(), variant);
}

std::string lln_chat_templates_caps(const lln_chat_templates * tmpls) {
    check_handle(tmpls);
    common_json out = common_json::object();
    for (const auto & [key, value] : common_chat_templates_get_caps(tmpls->ptr.get())) {
        out[key] = value;
    }
    bool supports_thinking = false;
    try {
        // renders a one-message probe conversation, hence the lock; a template
        // that raises on it (e.g. requires a system message) cannot think for us
        std::lock_guard<std::mutex> lock(g_render_mutex);
        supports_thinking = common_chat_templates_support_enable_thinking(tmpls->ptr.get());
    } catch (const std::exception &) {
        supports_thinking = false;
    }
    out["supports_thinking"]     = supports_thinking;
    out["has_explicit_template"] = common_chat_templates_was_explicit(tmpls->ptr.get());
    out["has_tool_use_template"] = tmpls->has_tool_use;
    return out.dump();
}

namespace {

// -- lln_chat_apply, step by step ----------------------------------------------
// Each read_* step checks and copies some of the request's fields into
// common's inputs; they run in this order, so a request with several mistakes
// always reports the same one.

common_json parse_request(const std::string & request_json) {
    common_json req = parse_json_arg(request_json, "chat request");
    if (!req.is_object()) {
        throw std::invalid_argument("chat request must be a JSON object");
    }
    if (!req.contains("messages")) {
        throw std::invalid_argument("chat request needs \"messages\"");
    }
    return req;
}

// "messages", "tools", "tool_choice"
void read_conversation(const common_json & req, common_chat_templates_inputs & inputs) {
    // common wraps every message/tool error (even its invalid_argument ones) in
    // a runtime_error; all of them are about the request, so report them as such
    try {
        inputs.messages = common_chat_msgs_parse_oaicompat(req.at("messages"));
        inputs.tools    = common_chat_tools_parse_oaicompat(req.value("tools", common_json()));
    } catch (const std::exception & e) {
        throw std::invalid_argument(e.what());
    }
    if (has_field(req, "tool_choice") && !req.at("tool_choice").is_string()) {
        // OpenAI also allows {"type": "function", "function": {"name": ...}}
        throw std::invalid_argument("\"tool_choice\" must be \"auto\", \"none\" or \"required\"; "
                                    "to force one tool, pass only that tool with \"required\"");
    }
    inputs.tool_choice = common_chat_tool_choice_parse_oaicompat(get_string(req, "tool_choice", "auto"));
}

// "reasoning_format"
void read_reasoning_format(const common_json & req, common_chat_templates_inputs & inputs) {
    try {
        inputs.reasoning_format = common_reasoning_format_from_name(get_string(req, "reasoning_format", "auto"));
    } catch (const std::invalid_argument &) {
        throw;
    } catch (const std::exception & e) {
        throw std::invalid_argument(std::string("\"reasoning_format\": ") + e.what());
    }
}

// "parallel_tool_calls": same default as tools/server, what the template can render
void read_parallel_tool_calls(const common_json & req, const common_chat_templates * tmpls,
                              common_chat_templates_inputs & inputs) {
    const auto caps            = common_chat_templates_get_caps(tmpls);
    const auto parallel_it     = caps.find("supports_parallel_tool_calls");
    inputs.parallel_tool_calls = get_bool(req, "parallel_tool_calls", parallel_it != caps.end() && parallel_it->second);
}

// "continue_final_message", "add_generation_prompt"
void read_turn(const common_json & req, common_chat_templates_inputs & inputs) {
    if (has_field(req, "continue_final_message")) {
        const auto & v = req.at("continue_final_message");
        const bool ok = v.is_boolean() ||
            (v.is_string() && (v.get<std::string>() == "content" || v.get<std::string>() == "reasoning_content"));
        if (!ok) {
            // common maps anything unknown to "no continuation" silently
            throw std::invalid_argument("\"continue_final_message\" must be a boolean, \"content\" or "
                                        "\"reasoning_content\", got " + v.dump());
        }
        inputs.continue_final_message = common_chat_continuation_parse(v);
    }
    const bool continuing = inputs.continue_final_message != COMMON_CHAT_CONTINUATION_NONE;
    inputs.add_generation_prompt = get_bool(req, "add_generation_prompt", !continuing);
    if (continuing && inputs.add_generation_prompt) {
        throw std::invalid_argument("\"add_generation_prompt\" and \"continue_final_message\" cannot both be set");
    }
}

// "enable_thinking", "chat_template_kwargs"
void read_template_variables(const common_json & req, common_chat_templates_inputs & inputs) {
    inputs.enable_thinking = get_bool(req, "enable_thinking", true);
    if (!has_field(req, "chat_template_kwargs")) {
        return;
    }
    const auto & kwargs = req.at("chat_template_kwargs");
    if (!kwargs.is_object()) {
        throw std::invalid_argument("\"chat_template_kwargs\" must be an object");
    }
    // common takes each value as JSON text and parses it back
    for (const auto & [key, value] : kwargs.items()) {
        inputs.chat_template_kwargs[key] = value.dump();
    }
    // as in tools/server: the template variable also drives common's own handling
    inputs.enable_thinking = get_bool(kwargs, "enable_thinking", inputs.enable_thinking);
}

// tools given and not switched off by tool_choice
bool tools_on(const common_chat_templates_inputs & inputs) {
    return !inputs.tools.empty() && inputs.tool_choice != COMMON_CHAT_TOOL_CHOICE_NONE;
}

// "grammar", "json_schema": at most one of them, and no grammar beside tools
void read_constraint(const common_json & req, common_chat_templates_inputs & inputs) {
    const std::string grammar = get_string(req, "grammar", "");
    if (has_field(req, "json_schema")) {
        const auto & schema = req.at("json_schema");
        if (!schema.is_object()) {
            throw std::invalid_argument("\"json_schema\" must be an object");
        }
        if (!grammar.empty()) {
            throw std::invalid_argument("\"json_schema\" and \"grammar\" cannot both be set");
        }
        // convert once up front: a bad schema then fails here with a clear
        // invalid_argument instead of deep inside the parser generator
        schema_to_gbnf(schema);
        inputs.json_schema = schema.dump();
    }
    if (!grammar.empty() && tools_on(inputs)) {
        // common throws a runtime_error for this, after rendering
        throw std::invalid_argument("\"grammar\" cannot be used with tools (unless \"tool_choice\" is \"none\")");
    }
    inputs.grammar = grammar;
}

common_chat_params render(const common_chat_templates * tmpls, const common_chat_templates_inputs & inputs) {
    try {
        std::lock_guard<std::mutex> lock(g_render_mutex);
        return common_chat_templates_apply(tmpls, inputs);
    } catch (const std::exception & e) {
        // The request is validated before, so what is left is the template's:
        // its own raise_exception() (a bare std::exception, e.g. "roles must
        // alternate"), or a construct common's Jinja cannot run. common wraps
        // these in invalid_argument or runtime_error depending on the code
        // path; one type here keeps the caller's handling simple.
        throw std::runtime_error(std::string("chat template failed to render: ") + e.what());
    }
}

common_json triggers_json(const std::vector<common_grammar_trigger> & triggers) {
    common_json out = common_json::array();
    for (const auto & t : triggers) {
        out.push_back({
            {"type",    trigger_type_name(t.type)},
            {"value",   t.value},
            {"token",   (int) t.token},
            {"pattern", trigger_pattern(t)},
        });
    }
    return out;
}

// The result object of lln_chat_apply (its fields are listed in chat_bridge.h).
common_json apply_result(const common_chat_params & params, const common_chat_templates_inputs & inputs) {
    common_json out = common_json::object();
    out["prompt"] = params.prompt;
    // The jinja path only builds grammars for tools and json_schema; a user
    // grammar is passed back as is (tools/server does the same).
    // Grammars built from the template (tools, json_schema) start with the
    // generation prompt, which is already in the prompt: the caller has to feed
    // its tokens to the grammar sampler first, as common_sampler_init does for
    // COMMON_GRAMMAR_TYPE_TOOL_CALLS / _OUTPUT_FORMAT. A user grammar must not
    // get them. Lazy grammars start at their trigger, so no prefill either.
    const bool from_template = !params.grammar.empty();
    out["grammar"]         = from_template ? params.grammar : inputs.grammar;
    out["grammar_type"]    = from_template ? (inputs.json_schema.empty() ? "tool_calls" : "output_format")
                                           : (inputs.grammar.empty() ? "" : "user");
    out["grammar_lazy"]    = from_template && params.grammar_lazy;
    out["grammar_prefill"] = from_template && !params.grammar_lazy;
    out["grammar_triggers"]   = triggers_json(params.grammar_triggers);
    out["preserved_tokens"]   = params.preserved_tokens;
    out["additional_stops"]   = params.additional_stops;
    out["format"]             = (int) params.format;
    out["format_name"]        = common_chat_format_name(params.format);
    out["generation_prompt"]  = params.generation_prompt;
    out["parser"]             = params.parser;
    out["parse_tool_calls"]   = tools_on(inputs);
    out["supports_thinking"]  = params.supports_thinking;
    out["thinking_start_tag"] = params.thinking_start_tag;
    out["thinking_end_tags"]  = params.thinking_end_tags;
    return out;
}

}  // namespace

std::string lln_chat_apply(const lln_chat_templates * tmpls, const std::string & request_json) {
    check_handle(tmpls);
    const common_json req = parse_request(request_json);
    common_chat_templates_inputs inputs;
    inputs.use_jinja = true;  // the legacy path has no tools, schemas nor parser
    read_conversation(req, inputs);
    read_reasoning_format(req, inputs);
    read_parallel_tool_calls(req, tmpls->ptr.get(), inputs);
    read_turn(req, inputs);
    read_template_variables(req, inputs);
    read_constraint(req, inputs);
    return apply_result(render(tmpls->ptr.get(), inputs), inputs).dump();
}

std::string lln_json_schema_to_grammar(const std::string & schema_json) {
    const common_json schema = parse_json_arg(schema_json, "JSON schema");
    if (!schema.is_object()) {
        // common's converter takes objects only (not the boolean schemas true/false)
        throw std::invalid_argument("a JSON schema must be an object, got " + schema.dump());
    }
    return schema_to_gbnf(schema);
}
