# C++ declarations of chat_bridge.h (llama.cpp `common` behind std::string
# functions). Declarations only; see chat_bridge.h for every contract.

from libcpp cimport bool as cppbool
from libcpp.string cimport string

from llama cimport llama_model


cdef extern from "chat_bridge.h" nogil:
    struct lln_chat_templates:
        pass
    struct lln_chat_parser:
        pass

    lln_chat_templates * lln_chat_templates_init(const llama_model * model, const string & template_override) except +
    void lln_chat_templates_free(lln_chat_templates * tmpls)
    string lln_chat_templates_source(const lln_chat_templates * tmpls, const string & variant) except +
    string lln_chat_templates_caps(const lln_chat_templates * tmpls) except +
    string lln_chat_apply(const lln_chat_templates * tmpls, const string & request_json) except +
    lln_chat_parser * lln_chat_parser_init(const string & params_json) except +
    void lln_chat_parser_free(lln_chat_parser * parser)
    string lln_chat_parser_parse(const lln_chat_parser * parser, const string & text, cppbool is_partial) except +
    size_t lln_chat_parser_match_end(const lln_chat_parser * parser, const string & text) except +
    string lln_json_schema_to_grammar(const string & schema_json) except +
