// chat_bridge: llama.cpp's `common` chat templates, chat-output parsing and
// JSON-schema-to-grammar behind plain std::string functions.
//
// Why a bridge: `common` has no stable API (its structs change between
// llama.cpp commits), so the Cython extension never mirrors them. Everything
// crosses this boundary as std::string holding UTF-8 text or JSON text, and
// only chat_bridge.cpp and chat_parser.cpp have to follow common's changes.
//
// Errors: every function reports failure by throwing, never by aborting.
//   std::invalid_argument - the caller's input is wrong (bad JSON, missing or
//                           ill-typed field, bad schema, bad template source).
//                           Cython `except +` turns it into ValueError.
//   std::runtime_error    - anything else (a template that raises while
//                           rendering, output the parser cannot read, ...).
//                           Cython `except +` turns it into RuntimeError.
//
// Threading: lln_chat_apply() and lln_chat_templates_caps() serialize on one
// process-wide mutex (common's rendering calls std::localtime, which is not
// reentrant), so they may be called without the GIL from any thread. The other
// functions share no mutable state: handles are read-only after init, so one
// handle may be used from several threads at once (but not freed meanwhile).

#pragma once

#include <string>

struct llama_model;

// Opaque: owns common's chat templates (the default one and, if the GGUF has
// one, the "tool_use" variant), parsed once and reused for every request.
struct lln_chat_templates;

// Parses the model's chat template(s), or `template_override` if not empty.
// `model` may be NULL only when `template_override` is given; with a model, its
// BOS/EOS tokens are what the template sees as bos_token/eos_token.
// A model without a chat template gets common's ChatML fallback (see the
// "has_explicit_template" field of lln_chat_templates_caps()).
// Returns a new handle, never NULL; free it with lln_chat_templates_free().
// Throws std::invalid_argument if the template does not parse as Jinja, or if
// both `model` and `template_override` are missing.
lln_chat_templates * lln_chat_templates_init(const llama_model * model, const std::string & template_override);

// Frees a handle from lln_chat_templates_init(). NULL is a no-op.
void lln_chat_templates_free(lln_chat_templates * tmpls);

// Returns the Jinja source of the template `variant`: "" for the default one,
// "tool_use" for the tool-use variant ("" if the model has none).
// Throws std::invalid_argument on a NULL handle or an unknown variant.
std::string lln_chat_templates_source(const lln_chat_templates * tmpls, const std::string & variant);

// Returns a JSON object of booleans describing what the template can do:
//   the jinja caps of common ("supports_tools", "supports_tool_calls",
//   "supports_parallel_tool_calls", "supports_system_role",
//   "supports_string_content", "supports_typed_content",
//   "supports_object_arguments", "supports_preserve_reasoning",
//   "supports_reasoning_effort"; taken from the tool_use variant if present),
//   "supports_thinking"      - rendering with enable_thinking=true yields a
//                              reasoning block common knows how to parse,
//   "has_explicit_template"  - false if common fell back to ChatML,
//   "has_tool_use_template"  - the GGUF has a separate "tool_use" template.
// Throws std::invalid_argument on a NULL handle.
std::string lln_chat_templates_caps(const lln_chat_templates * tmpls);

// Renders a chat request and prepares everything generation needs.
//
// `request_json` is a JSON object (unknown keys are ignored):
//   "messages"               required, OpenAI messages: role system/developer/
//                            user/assistant/tool, content string | null |
//                            [{"type":"text","text":...}], assistant
//                            "tool_calls" [{"type":"function","id"?,"function":
//                            {"name","arguments"}}] and "reasoning_content",
//                            tool messages with "tool_call_id" / "name".
//   "tools"                  OpenAI tools [{"type":"function","function":
//                            {"name","description"?,"parameters"?}}] or null.
//   "tool_choice"            "auto" (default) | "none" | "required".
//   "parallel_tool_calls"    bool, default: the template's capability.
//   "add_generation_prompt"  bool, default true (false when continuing).
//   "continue_final_message" false (default) | true | "content" |
//                            "reasoning_content": continue the last
//                            (assistant) message instead of starting a new one.
//   "enable_thinking"        bool, default true (chat_template_kwargs
//                            "enable_thinking" wins if given).
//   "reasoning_format"       "auto" (default) | "none" | "deepseek" |
//                            "deepseek-legacy"; "none" leaves reasoning in
//                            content instead of extracting it.
//   "json_schema"            object | null: constrain the answer to it.
//   "grammar"                GBNF string: constrain the answer to it
//                            (not with "json_schema", nor with tools unless
//                            tool_choice is "none").
//   "chat_template_kwargs"   object: extra variables for the template.
//
// Returns a JSON object:
//   "prompt"             the rendered prompt (text, BOS not included when the
//                        vocab adds one itself).
//   "grammar"            GBNF to sample with, "" for none.
//   "grammar_type"       "tool_calls" | "output_format" (json_schema) | "user"
//                        (the request's "grammar", passed back) | "" (none).
//   "grammar_lazy"       bool: apply the grammar only once a trigger appears.
//   "grammar_prefill"    bool: the grammar starts with "generation_prompt";
//                        accept its tokens (llama_tokenize with parse_special,
//                        no add_special) into the grammar sampler before
//                        sampling, as common_sampler_init does.
//   "grammar_triggers"   [{"type": "word"|"pattern"|"pattern_full"|"token",
//                          "value": str, "token": int (-1 unless "token"),
//                          "pattern": regex for llama_sampler_init_grammar_lazy_patterns
//                                     ("" for "token")}]
//   "preserved_tokens"   [str]: special tokens that must stay single tokens.
//   "additional_stops"   [str]: extra stop strings.
//   "format"             int, "format_name" str: common's chat format.
//   "generation_prompt"  str: what the prompt ends with for the model's turn;
//                        the parser reads it back (see lln_chat_parser_init).
//   "parser"             str: common's serialized output parser.
//   "parse_tool_calls"   bool: tools are on (tools given, tool_choice != none).
//   "supports_thinking"  bool, "thinking_start_tag" str,
//   "thinking_end_tags"  [str]: reasoning markers (for reasoning budgets).
// Throws std::invalid_argument for a bad request (checked before rendering),
// std::runtime_error if the template fails to render, e.g. it raises on this
// conversation (the message then contains "Jinja Exception: <its text>").
// Note: common silently leaves tools out of the prompt (and parses no tool
// calls) if the template cannot render them; check "supports_tools" in
// lln_chat_templates_caps() first.
std::string lln_chat_apply(const lln_chat_templates * tmpls, const std::string & request_json);

// Opaque: a loaded output parser for one request (see lln_chat_parser_init).
struct lln_chat_parser;

// Loads the output parser of one lln_chat_apply() result. Loading costs far
// more than parsing, so when streaming, load once per request and parse the
// growing text with the same handle each time.
// `params_json` is the object lln_chat_apply() returned, or any object with at
// least its "format", "generation_prompt" and "parser" fields (the prompt is
// not needed).
// Returns a new handle, never NULL; free it with lln_chat_parser_free().
// Throws std::invalid_argument if `params_json` lacks those fields or they do
// not hold what lln_chat_apply() returned.
lln_chat_parser * lln_chat_parser_init(const std::string & params_json);

// Frees a handle from lln_chat_parser_init(). NULL is a no-op.
void lln_chat_parser_free(lln_chat_parser * parser);

// Parses model output `text` (the generated text only, not the prompt) into an
// assistant message. With "continue_final_message", the message includes the
// continued prefix (e.g. "Hello, I am" + " Bob." gives "Hello, I am Bob."):
// stream deltas against the parse of "", not against an empty message.
// `is_partial`: the text may stop mid-message (streaming); half-written tool
// calls are then returned as far as they go instead of failing (a call whose
// name is not complete yet is left out).
// Returns a JSON object, every key always present:
//   {"role": "assistant", "content": str, "reasoning_content": str,
//    "tool_calls": [{"type": "function", "id": str ("" unless the model wrote
//                    one: the caller assigns ids, and keeps them stable across
//                    partial parses),
//                    "function": {"name": str, "arguments": JSON text}}]}
// Throws std::invalid_argument on a NULL handle, std::runtime_error if a
// complete (`is_partial` false) output does not match the expected format.
std::string lln_chat_parser_parse(const lln_chat_parser * parser, const std::string & text, bool is_partial);

// How much of model output `text` matches the expected format: text.size() if
// all of it does (lln_chat_parser_parse would not throw), else the byte offset
// where common's parser stopped matching (what it reports as "unparsed
// output"), without logging that report.
// Throws std::invalid_argument on a NULL handle.
size_t lln_chat_parser_match_end(const lln_chat_parser * parser, const std::string & text);

// Converts a JSON schema (JSON text) to a GBNF grammar whose root rule matches
// the JSON documents the schema accepts.
// Returns the grammar text.
// Throws std::invalid_argument if `schema_json` is not a JSON object or the
// schema uses something the converter cannot express (the message says what).
std::string lln_json_schema_to_grammar(const std::string & schema_json);
