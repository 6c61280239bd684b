// Symbol tables in Volatility 3's Intermediate Symbol Format (ISF): the JSON
// files dwarf2json and Volatility's symbol packs ship, plain or xz-compressed.
//
// A SymbolTable answers what introspection needs from one: where a kernel
// symbol is linked, how big a type is, at which offset a member of a
// structure lies (looking into anonymous structures and unions), and the
// kernel's banner. It holds no guest memory; addresses are as linked (add
// the KASLR slide to use them at run time).
//
// Loading keeps a compact copy of the tables, not the JSON document: a
// 30 MB ISF becomes a few tens of MB in memory. Copies of a SymbolTable
// share that data and are cheap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/expected.h"

namespace pyrebox::vmi {

// An ISF type descriptor (the "type" of a field or a symbol).
struct TypeRef {
    // As in the ISF: "base", "pointer", "array", "struct", "union", "class",
    // "enum", "function" or "bitfield".
    std::string kind;
    // The named type for base, struct, union, class and enum; empty otherwise.
    std::string name;
    // array: the number of elements.
    uint64_t count = 0;
    // bitfield: the bits within the storage unit.
    uint32_t bit_position = 0;
    uint32_t bit_length = 0;
    // pointer: the pointee; array: the element; bitfield: the storage type.
    std::shared_ptr<const TypeRef> subtype;
};

// A member of a structure, union or class.
struct Member {
    std::string name;
    // From the start of the structure asked about, including the offsets of
    // the anonymous members it was found in.
    uint64_t offset = 0;
    TypeRef type;
};

class SymbolTable {
public:
    // The most JSON text an ISF may hold, plain or once unpacked: 256 MiB.
    // The largest ISF of a Debian kernel measured (7.3, made by
    // `pyrebox symbols`) is 25 MiB of JSON; dwarf2json's, with every DWARF
    // type, are larger but of the same order. 256 MiB leaves a 10x margin
    // and keeps a hostile file (an xz "bomb": 500 KB unpacking to tens of
    // GB) from taking more memory than that.
    static constexpr uint64_t kMaxJsonBytes = uint64_t{256} << 20;
    // Types nest ("subtype") at most this deep: pointer to array of
    // pointers is 3; a deeper chain is a hostile file.
    static constexpr size_t kMaxTypeDepth = 64;
    // Objects and arrays nest at most this deep anywhere in the file (an
    // ISF nests about 10 deep).
    static constexpr size_t kMaxNesting = 128;

    // Loads the ISF at `path`. xz-compressed files are recognised by their
    // content (the xz magic), whatever their name. Errors name the file and
    // the problem: "<path>: cannot read (...)", "<path>: corrupt xz data (...)",
    // "<path>: not JSON (...)", "<path>: not an ISF file (...)",
    // "<path>: no user_types", "<path>: user type 'x', field 'y': ...",
    // "<path>: [unpacks to ]more than 256 MiB of JSON, the most an ISF may
    // hold (...)" (the cap), "<path>: user type 'x', field 'y': the type
    // nests deeper than 64 levels (...)".
    // `max_json_bytes` is the cap on the JSON text (kMaxJsonBytes; smaller
    // in tests). Memory: the compressed file, the JSON text (at most the
    // cap) and the tables.
    static Expected<SymbolTable> load(const std::string& path,
                                      uint64_t max_json_bytes = kMaxJsonBytes);

    // The same from JSON text already in memory; `origin` names it in errors.
    static Expected<SymbolTable> parse(std::string_view json, const std::string& origin);

    // The linked address of a symbol ("symbols" section).
    std::optional<uint64_t> symbol_address(const std::string& name) const;
    // Calls fn(name, address) for every symbol, in no particular order.
    void for_each_symbol(const std::function<void(const std::string&, uint64_t)>& fn) const;
    // The type of a symbol, when the ISF gives one.
    std::optional<TypeRef> symbol_type(const std::string& name) const;
    // The bytes of a symbol's "constant_data" (base64 in the file), decoded.
    std::optional<std::string> symbol_constant_data(const std::string& name) const;

    // The size in bytes of a user type (struct/union/class), else of a base
    // type ("pointer", "int", "unsigned long", ...), else of an enum, looked
    // up in that order.
    std::optional<size_t> type_size(const std::string& type_name) const;
    // Whether a user type (struct/union/class) of that name exists.
    bool has_user_type(const std::string& type_name) const;

    // The offset of `member` in the user type `struct_name`. A member that
    // is not a direct field is searched for in the anonymous structures and
    // unions the type contains, at any depth, and their offsets are added.
    // Each user type is looked into once per search and at most
    // kMaxTypeDepth anonymous levels deep, so a hostile ISF whose anonymous
    // members contain their own type (A in A, A in B in A) gives not-found
    // in time proportional to the table, never a hang.
    // A field is anonymous when the ISF marks it `"anonymous": true` or its
    // name is one producers give unnamed members ("unnamed_field_*",
    // "__unnamed*", "__anon*", empty). No dotted paths: one structure at a
    // time.
    std::optional<size_t> member_offset(const std::string& struct_name,
                                        const std::string& member) const;
    // The same, with the member's type.
    std::optional<Member> member(const std::string& struct_name, const std::string& member) const;

    // The size of a pointer (the "pointer" base type).
    std::optional<size_t> pointer_size() const;

    // The value of an enum constant.
    std::optional<int64_t> enum_value(const std::string& enum_name,
                                      const std::string& constant) const;

    // The kernel banner ("Linux version ..."), without trailing NUL bytes:
    // the constant_data of the linux_banner symbol (where dwarf2json and
    // Volatility keep it), else a "banner" string in the metadata (top level
    // or under "linux").
    std::optional<std::string> banner() const;

    // The metadata format version ("6.2.0").
    const std::string& format() const;
    // What was loaded (the path, or `origin` for parse).
    const std::string& origin() const;

    size_t symbol_count() const;
    size_t user_type_count() const;

    struct Data;

private:
    explicit SymbolTable(std::shared_ptr<const Data> data) : data_(std::move(data)) {}
    std::shared_ptr<const Data> data_;
};

}  // namespace pyrebox::vmi
