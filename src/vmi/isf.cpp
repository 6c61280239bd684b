#include "vmi/isf.h"

#include <lzma.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace pyrebox::vmi {

namespace {

using json = nlohmann::json;

struct Field {
    std::string name;
    uint64_t offset = 0;
    bool anonymous = false;
    TypeRef type;
};

struct UserType {
    std::string kind;
    uint64_t size = 0;
    std::vector<Field> fields;
};

struct BaseType {
    uint64_t size = 0;
};

struct Enum {
    uint64_t size = 0;
    std::unordered_map<std::string, int64_t> constants;
};

struct Symbol {
    uint64_t address = 0;
    std::optional<TypeRef> type;
    std::optional<std::string> constant_data;  // still base64
};

}  // namespace

struct SymbolTable::Data {
    std::string origin;
    std::string format;
    std::optional<std::string> metadata_banner;
    std::unordered_map<std::string, UserType> user_types;
    std::unordered_map<std::string, BaseType> base_types;
    std::unordered_map<std::string, Enum> enums;
    std::unordered_map<std::string, Symbol> symbols;
};

namespace {

// ---- reading the file ----

constexpr unsigned char kXzMagic[] = {0xFD, '7', 'z', 'X', 'Z', 0x00};

bool is_xz(const std::string& bytes) {
    return bytes.size() >= sizeof kXzMagic &&
           std::memcmp(bytes.data(), kXzMagic, sizeof kXzMagic) == 0;
}

// "1 GiB", "8 MiB", "4096 bytes": a cap, for messages.
std::string human_size(uint64_t bytes) {
    if (bytes >= (uint64_t{1} << 30) && bytes % (uint64_t{1} << 30) == 0) {
        return std::to_string(bytes >> 30) + " GiB";
    }
    if (bytes >= (uint64_t{1} << 20) && bytes % (uint64_t{1} << 20) == 0) {
        return std::to_string(bytes >> 20) + " MiB";
    }
    if (bytes >= (uint64_t{1} << 10) && bytes % (uint64_t{1} << 10) == 0) {
        return std::to_string(bytes >> 10) + " KiB";
    }
    return std::to_string(bytes) + " bytes";
}

// The one message for a file over the cap, however it was found out.
Error too_big(const std::string& path, bool unpacked, uint64_t cap) {
    return Error{path + ": " + (unpacked ? "unpacks to " : "") + "more than " + human_size(cap) +
                 " of JSON, the most an ISF may hold (a kernel's is tens of MiB): not a kernel's "
                 "symbol table"};
}

// The file's bytes; more than `cap` is an error (a plain ISF is JSON text
// of at most the cap, and an xz one is smaller still).
Expected<std::string> read_file(const std::string& path, uint64_t cap) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        return Error{path + ": cannot read (" + std::strerror(errno) + ")"};
    }
    std::string bytes;
    char chunk[1 << 16];
    size_t n = 0;
    while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (bytes.size() + n > cap) {
            std::fclose(f);
            return too_big(path, false, cap);
        }
        bytes.append(chunk, n);
    }
    const bool failed = std::ferror(f);
    const int err = errno;
    std::fclose(f);
    if (failed) {
        return Error{path + ": cannot read (" + std::strerror(err) + ")"};
    }
    return bytes;
}

const char* lzma_problem(lzma_ret ret) {
    switch (ret) {
    case LZMA_MEM_ERROR:
        return "out of memory";
    case LZMA_MEMLIMIT_ERROR:
        return "it needs more than 256 MiB of memory to unpack; xz -9 needs 65 MiB";
    case LZMA_FORMAT_ERROR:
        return "not in the xz format";
    case LZMA_OPTIONS_ERROR:
        return "unsupported compression options";
    case LZMA_DATA_ERROR:
        return "data error";
    case LZMA_BUF_ERROR:
        return "truncated";
    default:
        return "decoder error";
    }
}

// What liblzma may allocate to unpack (dictionary, index): xz -9 needs
// 65 MiB; a header asking for more is a hostile file.
constexpr uint64_t kXzMemoryLimit = uint64_t{256} << 20;

Error corrupt_xz(const std::string& path, lzma_ret ret) {
    return Error{path + ": corrupt xz data (" + lzma_problem(ret) + ")"};
}

// The uncompressed size the xz file's indexes declare (every stream's,
// added), read from the end of the file without unpacking anything.
Expected<uint64_t> xz_declared_size(const std::string& compressed, const std::string& path) {
    lzma_stream strm = LZMA_STREAM_INIT;
    lzma_index* index = nullptr;
    lzma_ret ret = lzma_file_info_decoder(&strm, &index, kXzMemoryLimit, compressed.size());
    if (ret != LZMA_OK) {
        return corrupt_xz(path, ret);
    }
    const auto* data = reinterpret_cast<const uint8_t*>(compressed.data());
    strm.next_in = data;
    strm.avail_in = compressed.size();
    for (;;) {
        ret = lzma_code(&strm, LZMA_RUN);
        if (ret == LZMA_SEEK_NEEDED) {
            // seek_pos is within the file: the decoder was told its size.
            strm.next_in = data + strm.seek_pos;
            strm.avail_in = compressed.size() - strm.seek_pos;
            continue;
        }
        if (ret != LZMA_OK) {
            break;
        }
        if (strm.avail_in == 0) {
            // All given and no end: the file is cut short.
            ret = lzma_code(&strm, LZMA_FINISH);
            if (ret == LZMA_OK) {
                ret = LZMA_BUF_ERROR;
            }
            break;
        }
    }
    lzma_end(&strm);
    if (ret != LZMA_STREAM_END) {
        return corrupt_xz(path, ret);
    }
    const uint64_t size = lzma_index_uncompressed_size(index);
    lzma_index_end(index, nullptr);
    return size;
}

// Why an xz file whose indexes cannot be read is corrupt, in the stream
// decoder's words ("truncated", "data error"): it unpacks into a scratch
// buffer, keeping nothing, and stops at `cap` bytes.
Error diagnose_xz(const std::string& compressed, const std::string& path, uint64_t cap,
                  const Error& index_error) {
    lzma_stream strm = LZMA_STREAM_INIT;
    lzma_ret ret = lzma_stream_decoder(&strm, kXzMemoryLimit, LZMA_CONCATENATED);
    if (ret != LZMA_OK) {
        return corrupt_xz(path, ret);
    }
    strm.next_in = reinterpret_cast<const uint8_t*>(compressed.data());
    strm.avail_in = compressed.size();
    uint8_t scratch[1 << 16];
    do {
        strm.next_out = scratch;
        strm.avail_out = sizeof scratch;
        ret = lzma_code(&strm, LZMA_FINISH);
    } while (ret == LZMA_OK && strm.total_out <= cap);
    const uint64_t produced = strm.total_out;
    lzma_end(&strm);
    if (produced > cap) {
        return too_big(path, true, cap);
    }
    return ret == LZMA_STREAM_END ? index_error : corrupt_xz(path, ret);
}

// Unpacks an xz file into at most `cap` bytes. The size its indexes
// declare is checked against the cap before anything is unpacked (a
// bomb fails at once) and sizes the output once; the decoder then may not
// write past it (an index that lies is corrupt data, not more memory).
Expected<std::string> unxz(const std::string& compressed, const std::string& path, uint64_t cap) {
    auto declared = xz_declared_size(compressed, path);
    if (!declared) {
        return diagnose_xz(compressed, path, cap, Error{declared.error()});
    }
    if (*declared > cap) {
        return too_big(path, true, cap);
    }
    lzma_stream strm = LZMA_STREAM_INIT;
    lzma_ret ret = lzma_stream_decoder(&strm, kXzMemoryLimit, LZMA_CONCATENATED);
    if (ret != LZMA_OK) {
        return corrupt_xz(path, ret);
    }
    // One byte more than declared: writing it proves the index wrong.
    std::string out(static_cast<size_t>(*declared) + 1, '\0');
    strm.next_in = reinterpret_cast<const uint8_t*>(compressed.data());
    strm.avail_in = compressed.size();
    strm.next_out = reinterpret_cast<uint8_t*>(out.data());
    strm.avail_out = out.size();
    do {
        ret = lzma_code(&strm, LZMA_FINISH);
    } while (ret == LZMA_OK && strm.avail_out > 0);
    const size_t produced = out.size() - strm.avail_out;
    lzma_end(&strm);
    if (produced > *declared) {
        return Error{path + ": corrupt xz data (it unpacks to more than its index says)"};
    }
    if (ret != LZMA_STREAM_END) {
        return corrupt_xz(path, ret);
    }
    out.resize(produced);
    return out;
}

// ---- reading the document ----
//
// A SAX handler that builds the tables directly from the parser's events:
// no JSON document is ever built, which is what makes loading fast.

// A scalar value as the parser reports it.
struct Scalar {
    enum Kind { Null, Bool, Signed, Unsigned, Float, String } kind;
    bool b = false;
    int64_t i = 0;
    uint64_t u = 0;
    double d = 0;
    const std::string* s = nullptr;
};

const char* describe(Scalar::Kind kind) {
    switch (kind) {
    case Scalar::Null:
        return "null";
    case Scalar::Bool:
        return "a boolean";
    case Scalar::Signed:
    case Scalar::Unsigned:
        return "an integer";
    case Scalar::Float:
        return "a fractional number";
    case Scalar::String:
        return "a string";
    }
    return "a value";
}

enum class Frame {
    Root,
    Metadata,
    MetadataLinux,
    Section,
    UserType,
    Fields,
    Field,
    Type,
    BaseType,
    Enum,
    EnumConstants,
    Symbol,
    Ignore,  // an object or array this code does not read
};

enum class SectionKind { BaseTypes, UserTypes, Enums, Symbols };

bool named_kind(const std::string& k) {
    return k == "base" || k == "struct" || k == "union" || k == "class" || k == "enum";
}

bool anonymous_name(const std::string& name) {
    return name.empty() || name.rfind("unnamed_field", 0) == 0 || name.rfind("__unnamed", 0) == 0 ||
           name.rfind("__anon", 0) == 0;
}

class IsfSax {
public:
    explicit IsfSax(SymbolTable::Data& data) : d_(data) { stack_.reserve(16); }

    // Set when parsing stopped: the message (without the origin).
    std::string error;
    bool root_object = false;
    bool have_metadata = false;
    bool have_user_types = false;

    // ---- the SAX interface ----

    bool null() { return scalar({Scalar::Null}); }
    bool boolean(bool v) {
        Scalar s{Scalar::Bool};
        s.b = v;
        return scalar(s);
    }
    bool number_integer(int64_t v) {
        Scalar s{Scalar::Signed};
        s.i = v;
        return scalar(s);
    }
    bool number_unsigned(uint64_t v) {
        Scalar s{Scalar::Unsigned};
        s.u = v;
        return scalar(s);
    }
    bool number_float(double v, const std::string&) {
        Scalar s{Scalar::Float};
        s.d = v;
        return scalar(s);
    }
    bool string(std::string& v) {
        Scalar s{Scalar::String};
        s.s = &v;
        return scalar(s);
    }
    bool binary(json::binary_t&) { return object_expected("binary data"); }

    bool key(std::string& k) {
        State& top = stack_.back();
        top.key = k;
        return true;
    }

    bool start_object(size_t) {
        if (stack_.empty()) {
            root_object = true;
            push(Frame::Root);
            return true;
        }
        if (!within_nesting()) {
            return false;
        }
        // push() may move the stack: copy what is needed from the top first.
        const Frame frame = stack_.back().frame;
        const std::string k = stack_.back().key;
        switch (frame) {
        case Frame::Root:
            if (k == "metadata") {
                have_metadata = true;
                push(Frame::Metadata);
            } else if (k == "user_types" || k == "base_types" || k == "enums" || k == "symbols") {
                const SectionKind sk = k == "user_types"   ? SectionKind::UserTypes
                                       : k == "base_types" ? SectionKind::BaseTypes
                                       : k == "enums"      ? SectionKind::Enums
                                                           : SectionKind::Symbols;
                if (sk == SectionKind::UserTypes) {
                    have_user_types = true;
                }
                push(Frame::Section).section = sk;
                stack_.back().name = k;
            } else {
                push(Frame::Ignore);
            }
            return true;
        case Frame::Metadata:
            push(k == "linux" ? Frame::MetadataLinux : Frame::Ignore);
            return true;
        case Frame::Section: {
            const SectionKind sk = stack_.back().section;
            push(sk == SectionKind::UserTypes   ? Frame::UserType
                 : sk == SectionKind::BaseTypes ? Frame::BaseType
                 : sk == SectionKind::Enums     ? Frame::Enum
                                                : Frame::Symbol)
                .name = k;
            return true;
        }
        case Frame::UserType:
            if (k == "fields") {
                stack_.back().seen |= kSeenFields;
                push(Frame::Fields);
            } else {
                push(Frame::Ignore);
            }
            return true;
        case Frame::Fields:
            push(Frame::Field).name = k;
            return true;
        case Frame::Field:
        case Frame::Symbol:
            if (k == "type") {
                return push_type();
            }
            push(Frame::Ignore);
            return true;
        case Frame::Type:
            if (k == "subtype" || k == "type") {
                return push_type();
            }
            push(Frame::Ignore);
            return true;
        case Frame::Enum:
            push(k == "constants" ? Frame::EnumConstants : Frame::Ignore);
            return true;
        default:
            push(Frame::Ignore);
            return true;
        }
    }

    bool end_object() {
        State& top = stack_.back();
        switch (top.frame) {
        case Frame::UserType:
            if (!(top.seen & kSeenKind)) return fail(where() + ": no 'kind'");
            if (!(top.seen & kSeenSize)) return fail(where() + ": no 'size'");
            if (!(top.seen & kSeenFields)) return fail(where() + ": no 'fields'");
            d_.user_types.insert_or_assign(top.name, std::move(top.user_type));
            break;
        case Frame::Field: {
            if (!(top.seen & kSeenOffset)) return fail(where() + ": no 'offset'");
            if (!(top.seen & kSeenType)) return fail(where() + ": no 'type'");
            top.field.name = top.name;
            top.field.anonymous = top.field.anonymous || anonymous_name(top.name);
            // Field -> Fields -> UserType
            stack_[stack_.size() - 3].user_type.fields.push_back(std::move(top.field));
            break;
        }
        case Frame::Type: {
            TypeRef& t = top.type;
            if (!(top.seen & kSeenKind)) return fail(where() + ": the type has no 'kind'");
            if (named_kind(t.kind) && !(top.seen & kSeenName)) {
                return fail(where() + ": " + t.kind + " type: no 'name'");
            }
            if (t.kind == "array") {
                if (!(top.seen & kSeenCount)) return fail(where() + ": array type: no 'count'");
                if (!t.subtype) return fail(where() + ": array type: no 'subtype'");
            }
            if (t.kind == "bitfield") {
                if (!(top.seen & kSeenBitPosition)) {
                    return fail(where() + ": bitfield: no 'bit_position'");
                }
                if (!(top.seen & kSeenBitLength)) {
                    return fail(where() + ": bitfield: no 'bit_length'");
                }
                if (!t.subtype) return fail(where() + ": bitfield: no 'type'");
            }
            --type_depth_;
            State& up = parent();
            switch (up.frame) {
            case Frame::Field:
                up.field.type = std::move(t);
                up.seen |= kSeenType;
                break;
            case Frame::Symbol:
                up.symbol.type = std::move(t);
                break;
            case Frame::Type:
                up.type.subtype = std::make_shared<const TypeRef>(std::move(t));
                break;
            default:
                break;
            }
            break;
        }
        case Frame::BaseType:
            if (!(top.seen & kSeenSize)) return fail(where() + ": no 'size'");
            d_.base_types.insert_or_assign(top.name, BaseType{top.size});
            break;
        case Frame::Enum:
            if (!(top.seen & kSeenSize)) return fail(where() + ": no 'size'");
            top.enumeration.size = top.size;
            d_.enums.insert_or_assign(top.name, std::move(top.enumeration));
            break;
        case Frame::Symbol:
            if (!(top.seen & kSeenAddress)) return fail(where() + ": no 'address'");
            d_.symbols.insert_or_assign(top.name, std::move(top.symbol));
            break;
        default:
            break;
        }
        pop();
        return true;
    }

    bool start_array(size_t) {
        if (stack_.empty()) {
            return fail("not an ISF file (the top level is an array, not an object)");
        }
        if (!within_nesting() || !object_expected("an array")) {
            return false;
        }
        push(Frame::Ignore);
        return true;
    }

    bool end_array() {
        pop();
        return true;
    }

    bool parse_error(size_t, const std::string&, const nlohmann::detail::exception& e) {
        std::string what = e.what();
        // "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
        const size_t bracket = what.find("] ");
        if (bracket != std::string::npos) {
            what = what.substr(bracket + 2);
        }
        error = "not JSON (" + what + ")";
        return false;
    }

private:
    static constexpr uint32_t kSeenKind = 1, kSeenSize = 2, kSeenFields = 4, kSeenOffset = 8,
                              kSeenType = 16, kSeenName = 32, kSeenCount = 64,
                              kSeenBitPosition = 128, kSeenBitLength = 256, kSeenAddress = 512;

    struct State {
        Frame frame;
        std::string key;   // the last key read in this object
        std::string name;  // the entry's name (type, field, symbol, section)
        SectionKind section = SectionKind::UserTypes;
        uint32_t seen = 0;
        uint64_t size = 0;
        UserType user_type;
        Field field;
        TypeRef type;
        Enum enumeration;
        Symbol symbol;
    };

    State& push(Frame f) {
        stack_.emplace_back();
        stack_.back().frame = f;
        return stack_.back();
    }

    void pop() { stack_.pop_back(); }

    // The depth caps keep a hostile file (a million nested objects, a
    // pointer to a pointer to ... a million deep) from growing the stack of
    // entries and the chain of TypeRefs (whose destruction recurses)
    // without bound.
    bool within_nesting() {
        if (stack_.size() < SymbolTable::kMaxNesting) {
            return true;
        }
        const std::string w = where();
        return fail((w.empty() ? std::string("the document") : w) + " nests deeper than " +
                    std::to_string(SymbolTable::kMaxNesting) +
                    " levels (an ISF nests about 10 deep)");
    }

    bool push_type() {
        if (type_depth_ >= SymbolTable::kMaxTypeDepth) {
            return fail(where() + ": the type nests deeper than " +
                        std::to_string(SymbolTable::kMaxTypeDepth) +
                        " levels (a pointer to a pointer to ...): not a kernel's type");
        }
        ++type_depth_;
        push(Frame::Type);
        return true;
    }

    State& parent() { return stack_[stack_.size() - 2]; }

    bool fail(std::string message) {
        if (error.empty()) {
            error = std::move(message);
        }
        return false;
    }

    // Names the entry the parser is in, for messages: "user type 'x', field
    // 'y'", "symbol 'z'", ...
    std::string where() const {
        std::string out;
        for (const State& s : stack_) {
            switch (s.frame) {
            case Frame::UserType:
                out = "user type '" + s.name + "'";
                break;
            case Frame::Field:
                out += ", field '" + s.name + "'";
                break;
            case Frame::BaseType:
                out = "base type '" + s.name + "'";
                break;
            case Frame::Enum:
                out = "enum '" + s.name + "'";
                break;
            case Frame::Symbol:
                out = "symbol '" + s.name + "'";
                break;
            default:
                break;
            }
        }
        return out;
    }

    // A value that is not an object where the ISF has one is an error.
    bool object_expected(const char* what) {
        if (stack_.empty()) {
            return fail(std::string("not an ISF file (the top level is ") + what +
                        ", not an object)");
        }
        const State& top = stack_.back();
        const std::string& k = top.key;
        switch (top.frame) {
        case Frame::Root:
            if (k == "metadata") {
                return fail("not an ISF file (no 'metadata' object)");
            }
            if (k == "user_types" || k == "base_types" || k == "enums" || k == "symbols") {
                return fail("not an ISF file ('" + k + "' is " + what + ", not an object)");
            }
            return true;
        case Frame::Section:
            return fail(top.name + " entry '" + k + "' is " + what + ", not an object");
        case Frame::Fields:
            return fail(where() + ", field '" + k + "': " + what + ", not an object");
        case Frame::UserType:
            if (k == "fields") {
                return fail(where() + ": 'fields' is " + what + ", not an object");
            }
            return true;
        case Frame::Field:
        case Frame::Symbol:
            if (k == "type") {
                return fail(where() + ": the type is " + what + ", not an object");
            }
            return true;
        case Frame::Type:
            if (k == "subtype" || k == "type") {
                return fail(where() + ": the type is " + what + ", not an object");
            }
            return true;
        default:
            return true;
        }
    }

    bool integer(const Scalar& v, const std::string& k, uint64_t& out) {
        switch (v.kind) {
        case Scalar::Unsigned:
            out = v.u;
            return true;
        case Scalar::Signed:
            out = static_cast<uint64_t>(v.i);
            return true;
        case Scalar::Float:
            if (v.d >= 0 && v.d < 18446744073709551616.0 &&
                v.d == static_cast<double>(static_cast<uint64_t>(v.d))) {
                out = static_cast<uint64_t>(v.d);
                return true;
            }
            break;
        default:
            break;
        }
        return fail(where() + ": '" + k + "' is " + describe(v.kind) + ", not an integer");
    }

    bool text(const Scalar& v, const std::string& k, std::string& out) {
        if (v.kind != Scalar::String) {
            return fail(where() + ": '" + k + "' is " + describe(v.kind) + ", not a string");
        }
        out = *v.s;
        return true;
    }

    bool scalar(const Scalar& v) {
        if (stack_.empty()) {
            return object_expected(describe(v.kind));
        }
        State& top = stack_.back();
        const std::string& k = top.key;
        switch (top.frame) {
        case Frame::Metadata:
            if (k == "format" && v.kind == Scalar::String) {
                d_.format = *v.s;
                have_format_ = true;
            } else if (k == "banner" && v.kind == Scalar::String) {
                d_.metadata_banner = *v.s;
            }
            return true;
        case Frame::MetadataLinux:
            if (k == "banner" && v.kind == Scalar::String && !d_.metadata_banner) {
                d_.metadata_banner = *v.s;
            }
            return true;
        case Frame::UserType:
            if (k == "kind") {
                top.seen |= kSeenKind;
                return text(v, k, top.user_type.kind);
            }
            if (k == "size") {
                top.seen |= kSeenSize;
                return integer(v, k, top.user_type.size);
            }
            return object_expected(describe(v.kind));
        case Frame::Field:
            if (k == "offset") {
                top.seen |= kSeenOffset;
                return integer(v, k, top.field.offset);
            }
            if (k == "anonymous") {
                top.field.anonymous = v.kind == Scalar::Bool && v.b;
                return true;
            }
            return object_expected(describe(v.kind));
        case Frame::Type: {
            TypeRef& t = top.type;
            uint64_t n = 0;
            if (k == "kind") {
                top.seen |= kSeenKind;
                return text(v, k, t.kind);
            }
            if (k == "name") {
                top.seen |= kSeenName;
                return text(v, k, t.name);
            }
            if (k == "count") {
                top.seen |= kSeenCount;
                return integer(v, k, t.count);
            }
            if (k == "bit_position") {
                top.seen |= kSeenBitPosition;
                const bool ok = integer(v, k, n);
                t.bit_position = static_cast<uint32_t>(n);
                return ok;
            }
            if (k == "bit_length") {
                top.seen |= kSeenBitLength;
                const bool ok = integer(v, k, n);
                t.bit_length = static_cast<uint32_t>(n);
                return ok;
            }
            return object_expected(describe(v.kind));
        }
        case Frame::BaseType:
        case Frame::Enum:
            if (k == "size") {
                top.seen |= kSeenSize;
                return integer(v, k, top.size);
            }
            return true;
        case Frame::EnumConstants: {
            uint64_t n = 0;
            if (!integer(v, k, n)) {
                return false;
            }
            // The constants belong to the enum being read.
            parent().enumeration.constants.insert_or_assign(k, static_cast<int64_t>(n));
            return true;
        }
        case Frame::Symbol:
            if (k == "address") {
                top.seen |= kSeenAddress;
                return integer(v, k, top.symbol.address);
            }
            if (k == "constant_data" && v.kind == Scalar::String) {
                top.symbol.constant_data = *v.s;
                return true;
            }
            return object_expected(describe(v.kind));
        default:
            return object_expected(describe(v.kind));
        }
    }

public:
    bool have_format() const { return have_format_; }

private:
    SymbolTable::Data& d_;
    std::vector<State> stack_;
    size_t type_depth_ = 0;  // Type frames on the stack
    bool have_format_ = false;
};

std::string base64_decode(const std::string& in) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+' || c == '-') return 62;
        if (c == '/' || c == '_') return 63;
        return -1;
    };
    std::string out;
    out.reserve(in.size() / 4 * 3);
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        const int v = value(c);
        if (v < 0) {
            continue;  // padding, whitespace
        }
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    return out;
}

std::string up_to_nul(std::string s) {
    const size_t nul = s.find('\0');
    if (nul != std::string::npos) {
        s.resize(nul);
    }
    return s;
}

}  // namespace

Expected<SymbolTable> SymbolTable::load(const std::string& path, uint64_t max_json_bytes) {
    auto bytes = read_file(path, max_json_bytes);
    if (!bytes) {
        return Error{bytes.error()};
    }
    if (is_xz(*bytes)) {
        auto text = unxz(*bytes, path, max_json_bytes);
        if (!text) {
            return Error{text.error()};
        }
        bytes->clear();
        bytes->shrink_to_fit();
        return parse(*text, path);
    }
    return parse(*bytes, path);
}

Expected<SymbolTable> SymbolTable::parse(std::string_view text, const std::string& origin) {
    auto data = std::make_shared<Data>();
    data->origin = origin;
    IsfSax sax(*data);
    bool ok = false;
    try {
        ok = json::sax_parse(text.begin(), text.end(), &sax);
    } catch (const std::exception& e) {
        // The SAX parser reports its errors through parse_error(); this is
        // for anything else (out of memory).
        return Error{origin + ": " + e.what()};
    }
    if (!ok) {
        return Error{origin + ": " + (sax.error.empty() ? "not JSON" : sax.error)};
    }
    if (!sax.root_object) {
        return Error{origin + ": not an ISF file (the top level is not an object)"};
    }
    if (!sax.have_metadata) {
        return Error{origin + ": not an ISF file (no 'metadata' object)"};
    }
    if (!sax.have_format()) {
        return Error{origin + ": not an ISF file (no 'metadata.format' string)"};
    }
    if (!sax.have_user_types) {
        return Error{origin + ": no user_types (an ISF file has a 'user_types' section)"};
    }
    return SymbolTable(std::move(data));
}

std::optional<uint64_t> SymbolTable::symbol_address(const std::string& name) const {
    auto it = data_->symbols.find(name);
    if (it == data_->symbols.end()) {
        return std::nullopt;
    }
    return it->second.address;
}

void SymbolTable::for_each_symbol(
    const std::function<void(const std::string&, uint64_t)>& fn) const {
    for (const auto& [name, symbol] : data_->symbols) {
        fn(name, symbol.address);
    }
}

std::optional<TypeRef> SymbolTable::symbol_type(const std::string& name) const {
    auto it = data_->symbols.find(name);
    if (it == data_->symbols.end()) {
        return std::nullopt;
    }
    return it->second.type;
}

std::optional<std::string> SymbolTable::symbol_constant_data(const std::string& name) const {
    auto it = data_->symbols.find(name);
    if (it == data_->symbols.end() || !it->second.constant_data) {
        return std::nullopt;
    }
    return base64_decode(*it->second.constant_data);
}

std::optional<size_t> SymbolTable::type_size(const std::string& type_name) const {
    if (auto it = data_->user_types.find(type_name); it != data_->user_types.end()) {
        return it->second.size;
    }
    if (auto it = data_->base_types.find(type_name); it != data_->base_types.end()) {
        return it->second.size;
    }
    if (auto it = data_->enums.find(type_name); it != data_->enums.end()) {
        return it->second.size;
    }
    return std::nullopt;
}

bool SymbolTable::has_user_type(const std::string& type_name) const {
    return data_->user_types.count(type_name) != 0;
}

namespace {

// Depth-first search of `name` in `struct_name` and the anonymous
// structures and unions in it. `looked_into` holds the types already
// searched: a type's answer does not depend on where it sits, so a type met
// again (a second anonymous member of the same type, or a cycle A -> B -> A
// a hostile ISF can write) has nothing new to give. With the depth cap that
// bounds the recursion, the search is linear in the table and never loops.
std::optional<Member> find_member(const SymbolTable::Data& d, const std::string& struct_name,
                                  const std::string& name, uint64_t base, size_t depth,
                                  std::unordered_set<std::string>& looked_into) {
    if (depth > SymbolTable::kMaxTypeDepth || !looked_into.insert(struct_name).second) {
        return std::nullopt;
    }
    auto it = d.user_types.find(struct_name);
    if (it == d.user_types.end()) {
        return std::nullopt;
    }
    const UserType& t = it->second;
    for (const Field& f : t.fields) {
        if (f.name == name) {
            return Member{f.name, base + f.offset, f.type};
        }
    }
    for (const Field& f : t.fields) {
        if (f.anonymous && (f.type.kind == "struct" || f.type.kind == "union" ||
                            f.type.kind == "class")) {
            if (auto m = find_member(d, f.type.name, name, base + f.offset, depth + 1,
                                     looked_into)) {
                return m;
            }
        }
    }
    return std::nullopt;
}

std::optional<Member> find_member(const SymbolTable::Data& d, const std::string& struct_name,
                                  const std::string& name) {
    std::unordered_set<std::string> looked_into;
    return find_member(d, struct_name, name, 0, 0, looked_into);
}

}  // namespace

std::optional<size_t> SymbolTable::member_offset(const std::string& struct_name,
                                                 const std::string& member_name) const {
    auto m = find_member(*data_, struct_name, member_name);
    if (!m) {
        return std::nullopt;
    }
    return static_cast<size_t>(m->offset);
}

std::optional<Member> SymbolTable::member(const std::string& struct_name,
                                          const std::string& member_name) const {
    return find_member(*data_, struct_name, member_name);
}

std::optional<size_t> SymbolTable::pointer_size() const {
    auto it = data_->base_types.find("pointer");
    if (it == data_->base_types.end()) {
        return std::nullopt;
    }
    return it->second.size;
}

std::optional<int64_t> SymbolTable::enum_value(const std::string& enum_name,
                                               const std::string& constant) const {
    auto it = data_->enums.find(enum_name);
    if (it == data_->enums.end()) {
        return std::nullopt;
    }
    auto c = it->second.constants.find(constant);
    if (c == it->second.constants.end()) {
        return std::nullopt;
    }
    return c->second;
}

std::optional<std::string> SymbolTable::banner() const {
    if (auto data = symbol_constant_data("linux_banner")) {
        std::string b = up_to_nul(std::move(*data));
        if (!b.empty()) {
            return b;
        }
    }
    if (data_->metadata_banner) {
        std::string b = up_to_nul(*data_->metadata_banner);
        if (!b.empty()) {
            return b;
        }
    }
    return std::nullopt;
}

const std::string& SymbolTable::format() const { return data_->format; }

const std::string& SymbolTable::origin() const { return data_->origin; }

size_t SymbolTable::symbol_count() const { return data_->symbols.size(); }

size_t SymbolTable::user_type_count() const { return data_->user_types.size(); }

}  // namespace pyrebox::vmi
