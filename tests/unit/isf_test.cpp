#include "vmi/isf.h"

#include <gtest/gtest.h>
#include <lzma.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <unistd.h>

namespace {

using pyrebox::vmi::SymbolTable;

// A small ISF shaped like dwarf2json's output for a Linux kernel (schema
// 6.2.0): anonymous members as "unnamed_field_*" fields marked anonymous,
// of types named "unnamed_*", plus one a BTF-based producer would write
// ("__unnamed_1", no flag).
const char* const kIsf = R"({
  "metadata": {
    "format": "6.2.0",
    "producer": {"name": "test", "version": "1"},
    "linux": {"symbols": [], "types": []}
  },
  "base_types": {
    "pointer": {"size": 8, "signed": false, "kind": "int", "endian": "little"},
    "unsigned long": {"size": 8, "signed": false, "kind": "int", "endian": "little"},
    "int": {"size": 4, "signed": true, "kind": "int", "endian": "little"},
    "char": {"size": 1, "signed": true, "kind": "char", "endian": "little"}
  },
  "user_types": {
    "list_head": {"kind": "struct", "size": 16, "fields": {
      "next": {"type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "list_head"}}, "offset": 0},
      "prev": {"type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "list_head"}}, "offset": 8}
    }},
    "task_struct": {"kind": "struct", "size": 9856, "fields": {
      "tasks": {"type": {"kind": "struct", "name": "list_head"}, "offset": 2192},
      "mm": {"type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "mm_struct"}}, "offset": 2272},
      "pid": {"type": {"kind": "base", "name": "int"}, "offset": 2416},
      "comm": {"type": {"kind": "array", "count": 16, "subtype": {"kind": "base", "name": "char"}}, "offset": 2976},
      "in_execve": {"type": {"kind": "bitfield", "bit_position": 1, "bit_length": 1, "type": {"kind": "base", "name": "unsigned int"}}, "offset": 2384}
    }},
    "mm_struct": {"kind": "struct", "size": 1088, "fields": {
      "unnamed_field_0": {"type": {"kind": "struct", "name": "unnamed_8a3f"}, "offset": 0, "anonymous": true},
      "cpu_bitmap": {"type": {"kind": "array", "count": 0, "subtype": {"kind": "base", "name": "unsigned long"}}, "offset": 1088}
    }},
    "unnamed_8a3f": {"kind": "struct", "size": 1088, "fields": {
      "unnamed_field_0": {"type": {"kind": "struct", "name": "unnamed_77c1"}, "offset": 0, "anonymous": true},
      "mm_mt": {"type": {"kind": "struct", "name": "maple_tree"}, "offset": 64},
      "pgd": {"type": {"kind": "pointer", "subtype": {"kind": "base", "name": "void"}}, "offset": 120},
      "unnamed_field_2a0": {"type": {"kind": "union", "name": "unnamed_5511"}, "offset": 672, "anonymous": true}
    }},
    "unnamed_77c1": {"kind": "struct", "size": 64, "fields": {
      "mm_count": {"type": {"kind": "base", "name": "int"}, "offset": 0}
    }},
    "unnamed_5511": {"kind": "union", "size": 16, "fields": {
      "exe_file": {"type": {"kind": "pointer", "subtype": {"kind": "base", "name": "void"}}, "offset": 0},
      "__unnamed_1": {"type": {"kind": "struct", "name": "__anon_inner"}, "offset": 0}
    }},
    "__anon_inner": {"kind": "struct", "size": 16, "fields": {
      "deep_a": {"type": {"kind": "base", "name": "int"}, "offset": 4},
      "deep_b": {"type": {"kind": "base", "name": "int"}, "offset": 12}
    }},
    "maple_tree": {"kind": "struct", "size": 16, "fields": {
      "unnamed_field_0": {"type": {"kind": "union", "name": "unnamed_1"}, "offset": 0, "anonymous": true},
      "ma_root": {"type": {"kind": "pointer", "subtype": {"kind": "base", "name": "void"}}, "offset": 8},
      "ma_flags": {"type": {"kind": "base", "name": "unsigned int"}, "offset": 16}
    }},
    "unnamed_1": {"kind": "union", "size": 4, "fields": {
      "ma_lock": {"type": {"kind": "base", "name": "int"}, "offset": 0}
    }}
  },
  "enums": {
    "maple_type": {"size": 4, "base": "unsigned int", "constants": {
      "maple_dense": 0, "maple_leaf_64": 1, "maple_range_64": 2, "maple_arange_64": 3}},
    "signed_enum": {"size": 4, "base": "int", "constants": {"minus_one": -1}}
  },
  "symbols": {
    "init_task": {"address": 18446744071608248640,
                  "type": {"kind": "struct", "name": "task_struct"}},
    "_text": {"address": 18446744071578845184},
    "linux_banner": {"address": 18446744071597930016,
                     "type": {"kind": "array", "count": 134, "subtype": {"kind": "base", "name": "char"}},
                     "constant_data": "TGludXggdmVyc2lvbiA2LjEuMC10ZXN0IChnY2MpICMxIFNNUCBQUkVFTVBUX0RZTkFNSUMKAA=="},
    "low": {"address": 4096}
  }
})";

// "Linux version 6.1.0-test (gcc) #1 SMP PREEMPT_DYNAMIC\n\0", as above.
const std::string kBanner = "Linux version 6.1.0-test (gcc) #1 SMP PREEMPT_DYNAMIC\n";

class IsfFiles : public ::testing::Test {
protected:
    std::string path(const std::string& name) {
        std::string p = ::testing::TempDir() + "pyrebox_isf_" + std::to_string(::getpid()) + "_" +
                        name;
        created_.push_back(p);
        return p;
    }

    std::string write(const std::string& name, const std::string& bytes) {
        const std::string p = path(name);
        std::ofstream(p, std::ios::binary) << bytes;
        return p;
    }

    static std::string xz(const std::string& text) {
        std::string out(lzma_stream_buffer_bound(text.size()), '\0');
        size_t pos = 0;
        EXPECT_EQ(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, nullptr,
                                          reinterpret_cast<const uint8_t*>(text.data()), text.size(),
                                          reinterpret_cast<uint8_t*>(out.data()), &pos, out.size()),
                  LZMA_OK);
        out.resize(pos);
        return out;
    }

    void TearDown() override {
        for (const auto& p : created_) {
            std::remove(p.c_str());
        }
    }

    std::vector<std::string> created_;
};

void expect_test_table(const SymbolTable& t) {
    EXPECT_EQ(t.format(), "6.2.0");
    EXPECT_EQ(t.symbol_address("init_task"), 0xffffffff82c0a940ull);
    EXPECT_EQ(t.symbol_address("_text"), 0xffffffff81000000ull);
    EXPECT_EQ(t.symbol_address("linux_banner"), 0xffffffff82233620ull);
    EXPECT_EQ(t.symbol_address("low"), 4096u);
    EXPECT_EQ(t.symbol_address("nope"), std::nullopt);
    EXPECT_EQ(t.type_size("task_struct"), 9856u);
    EXPECT_EQ(t.type_size("pointer"), 8u);
    EXPECT_EQ(t.type_size("int"), 4u);
    EXPECT_EQ(t.type_size("maple_type"), 4u);
    EXPECT_EQ(t.type_size("nope"), std::nullopt);
    EXPECT_EQ(t.pointer_size(), 8u);
    EXPECT_EQ(t.member_offset("task_struct", "tasks"), 2192u);
    EXPECT_EQ(t.member_offset("task_struct", "mm"), 2272u);
    EXPECT_EQ(t.member_offset("task_struct", "pid"), 2416u);
    EXPECT_EQ(t.member_offset("task_struct", "comm"), 2976u);
    EXPECT_EQ(t.banner(), kBanner);
    EXPECT_EQ(t.symbol_count(), 4u);
    EXPECT_EQ(t.user_type_count(), 9u);
}

TEST_F(IsfFiles, LoadsAPlainFile) {
    const std::string p = write("plain.json", kIsf);
    auto t = SymbolTable::load(p);
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->origin(), p);
    expect_test_table(*t);
}

TEST_F(IsfFiles, LoadsAnXzFileWhateverItsName) {
    auto t = SymbolTable::load(write("kernel.json.xz", xz(kIsf)));
    ASSERT_TRUE(t.ok()) << t.error();
    expect_test_table(*t);
    auto u = SymbolTable::load(write("kernel.json", xz(kIsf)));
    ASSERT_TRUE(u.ok()) << u.error();
    expect_test_table(*u);
}

TEST(Isf, MembersOfAnonymousStructsAndUnions) {
    auto t = SymbolTable::parse(kIsf, "test");
    ASSERT_TRUE(t.ok()) << t.error();
    // mm_struct { struct { struct { int mm_count; }; ... mm_mt @64; pgd @120;
    //   union @672 { exe_file; struct { deep_a @4; deep_b @12 }; } }; }
    EXPECT_EQ(t->member_offset("mm_struct", "mm_count"), 0u);
    EXPECT_EQ(t->member_offset("mm_struct", "mm_mt"), 64u);
    EXPECT_EQ(t->member_offset("mm_struct", "pgd"), 120u);
    EXPECT_EQ(t->member_offset("mm_struct", "exe_file"), 672u);
    EXPECT_EQ(t->member_offset("mm_struct", "deep_a"), 676u);
    EXPECT_EQ(t->member_offset("mm_struct", "deep_b"), 684u);
    EXPECT_EQ(t->member_offset("mm_struct", "cpu_bitmap"), 1088u);
    EXPECT_EQ(t->member_offset("maple_tree", "ma_lock"), 0u);
    EXPECT_EQ(t->member_offset("maple_tree", "ma_root"), 8u);
    // The anonymous fields themselves are still members.
    EXPECT_EQ(t->member_offset("mm_struct", "unnamed_field_0"), 0u);
    EXPECT_EQ(t->member_offset("mm_struct", "nope"), std::nullopt);
    EXPECT_EQ(t->member_offset("nope", "pgd"), std::nullopt);
    // One structure at a time: no dotted paths, no looking into named members.
    EXPECT_EQ(t->member_offset("mm_struct", "mm_mt.ma_root"), std::nullopt);
    EXPECT_EQ(t->member_offset("mm_struct", "ma_root"), std::nullopt);
}

TEST(Isf, MemberTypes) {
    auto t = SymbolTable::parse(kIsf, "test");
    ASSERT_TRUE(t.ok()) << t.error();
    auto comm = t->member("task_struct", "comm");
    ASSERT_TRUE(comm);
    EXPECT_EQ(comm->name, "comm");
    EXPECT_EQ(comm->offset, 2976u);
    EXPECT_EQ(comm->type.kind, "array");
    EXPECT_EQ(comm->type.count, 16u);
    ASSERT_TRUE(comm->type.subtype);
    EXPECT_EQ(comm->type.subtype->kind, "base");
    EXPECT_EQ(comm->type.subtype->name, "char");

    auto mm = t->member("task_struct", "mm");
    ASSERT_TRUE(mm);
    EXPECT_EQ(mm->type.kind, "pointer");
    ASSERT_TRUE(mm->type.subtype);
    EXPECT_EQ(mm->type.subtype->kind, "struct");
    EXPECT_EQ(mm->type.subtype->name, "mm_struct");

    auto bits = t->member("task_struct", "in_execve");
    ASSERT_TRUE(bits);
    EXPECT_EQ(bits->offset, 2384u);
    EXPECT_EQ(bits->type.kind, "bitfield");
    EXPECT_EQ(bits->type.bit_position, 1u);
    EXPECT_EQ(bits->type.bit_length, 1u);
    EXPECT_EQ(bits->type.subtype->name, "unsigned int");

    auto deep = t->member("mm_struct", "deep_b");
    ASSERT_TRUE(deep);
    EXPECT_EQ(deep->offset, 684u);
    EXPECT_EQ(deep->type.name, "int");

    auto sym = t->symbol_type("linux_banner");
    ASSERT_TRUE(sym);
    EXPECT_EQ(sym->kind, "array");
    EXPECT_EQ(sym->count, 134u);
    EXPECT_EQ(t->symbol_type("_text"), std::nullopt);
}

TEST(Isf, EnumsAndConstantData) {
    auto t = SymbolTable::parse(kIsf, "test");
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->enum_value("maple_type", "maple_arange_64"), 3);
    EXPECT_EQ(t->enum_value("signed_enum", "minus_one"), -1);
    EXPECT_EQ(t->enum_value("maple_type", "nope"), std::nullopt);
    EXPECT_EQ(t->enum_value("nope", "maple_dense"), std::nullopt);
    EXPECT_EQ(t->symbol_constant_data("linux_banner"), kBanner + std::string(1, '\0'));
    EXPECT_EQ(t->symbol_constant_data("_text"), std::nullopt);
}

TEST(Isf, BannerFromTheMetadataWhenTheSymbolHasNoData) {
    auto t = SymbolTable::parse(R"({"metadata": {"format": "6.2.0", "banner": "Linux version 6.1.0-md\n"},
        "base_types": {}, "user_types": {}, "enums": {},
        "symbols": {"linux_banner": {"address": 1}}})",
                                "md");
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->banner(), "Linux version 6.1.0-md\n");

    auto u = SymbolTable::parse(R"({"metadata": {"format": "6.2.0", "linux": {"banner": "Linux version x"}},
        "user_types": {}})",
                                "md");
    ASSERT_TRUE(u.ok()) << u.error();
    EXPECT_EQ(u->banner(), "Linux version x");

    auto none = SymbolTable::parse(R"({"metadata": {"format": "6.2.0"}, "user_types": {},
        "symbols": {"linux_banner": {"address": 1}}})",
                                   "none");
    ASSERT_TRUE(none.ok()) << none.error();
    EXPECT_EQ(none->banner(), std::nullopt);
    EXPECT_EQ(none->pointer_size(), std::nullopt);
}

TEST_F(IsfFiles, ErrorsNameTheFileAndTheProblem) {
    const std::string missing = path("missing.json");
    auto r = SymbolTable::load(missing);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), missing + ": cannot read (No such file or directory)");

    const std::string text = write("text.json", "this is not json");
    r = SymbolTable::load(text);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().rfind(text + ": not JSON (parse error at line 1, column 2", 0), 0u)
        << r.error();

    const std::string truncated = write("truncated.json", std::string(kIsf).substr(0, 900));
    r = SymbolTable::load(truncated);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().rfind(truncated + ": not JSON (", 0), 0u) << r.error();

    const std::string array = write("array.json", "[1, 2]");
    r = SymbolTable::load(array);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), array + ": not an ISF file (the top level is an array, not an object)");

    const std::string nometa = write("nometa.json", R"({"user_types": {}})");
    r = SymbolTable::load(nometa);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), nometa + ": not an ISF file (no 'metadata' object)");

    const std::string noformat = write("noformat.json", R"({"metadata": {}, "user_types": {}})");
    r = SymbolTable::load(noformat);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), noformat + ": not an ISF file (no 'metadata.format' string)");

    const std::string notypes =
        write("notypes.json", R"({"metadata": {"format": "6.2.0"}, "symbols": {}})");
    r = SymbolTable::load(notypes);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), notypes + ": no user_types (an ISF file has a 'user_types' section)");

    const std::string badsection =
        write("badsection.json", R"({"metadata": {"format": "6.2.0"}, "user_types": []})");
    r = SymbolTable::load(badsection);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), badsection + ": not an ISF file ('user_types' is an array, not an object)");

    const std::string badfield = write("badfield.json", R"({"metadata": {"format": "6.2.0"},
        "user_types": {"s": {"kind": "struct", "size": 8, "fields": {
            "f": {"type": {"kind": "base", "name": "int"}, "offset": "8"}}}}})");
    r = SymbolTable::load(badfield);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(),
              badfield + ": user type 's', field 'f': 'offset' is a string, not an integer");

    const std::string badsymbol = write("badsymbol.json", R"({"metadata": {"format": "6.2.0"},
        "user_types": {}, "symbols": {"x": {"type": {"kind": "base", "name": "int"}}}})");
    r = SymbolTable::load(badsymbol);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), badsymbol + ": symbol 'x': no 'address'");

    const std::string badentry = write("badentry.json", R"({"metadata": {"format": "6.2.0"},
        "user_types": {}, "symbols": {"x": 5}})");
    r = SymbolTable::load(badentry);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), badentry + ": symbols entry 'x' is an integer, not an object");

    std::string broken = xz(kIsf);
    broken[broken.size() / 2] ^= 0x55;
    const std::string badxz = write("broken.json.xz", broken);
    r = SymbolTable::load(badxz);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().rfind(badxz + ": corrupt xz data (", 0), 0u) << r.error();

    const std::string shortxz = write("short.json.xz", xz(kIsf).substr(0, 40));
    r = SymbolTable::load(shortxz);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), shortxz + ": corrupt xz data (truncated)");
}

TEST(Isf, AnyKeyOrderAndUnknownKeys) {
    auto t = SymbolTable::parse(R"({
        "symbols": {"s": {"type": {"name": "int", "kind": "base"}, "extra": [1, {"a": 2}],
                          "address": 16}},
        "extra_section": {"x": [1, 2, {"y": null}]},
        "user_types": {"t": {"fields": {"f": {"type": {"subtype": {"name": "t", "kind": "struct"},
                                                        "kind": "pointer"},
                                               "offset": 24, "note": "ignored"}},
                             "size": 32, "kind": "struct"}},
        "metadata": {"producer": {"name": "x"}, "linux": {"symbols": [{"kind": "symtab"}]},
                     "format": "6.0.0"},
        "base_types": {"int": {"endian": "little", "size": 4, "kind": "int", "signed": true}},
        "enums": {}})",
                                "order");
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->format(), "6.0.0");
    EXPECT_EQ(t->symbol_address("s"), 16u);
    EXPECT_EQ(t->symbol_type("s")->name, "int");
    EXPECT_EQ(t->member_offset("t", "f"), 24u);
    EXPECT_EQ(t->member("t", "f")->type.subtype->name, "t");
    EXPECT_EQ(t->type_size("t"), 32u);
    EXPECT_EQ(t->type_size("int"), 4u);
}

TEST(Isf, MoreErrors) {
    auto r = SymbolTable::parse("42", "x.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "x.json: not an ISF file (the top level is an integer, not an object)");

    r = SymbolTable::parse("", "x.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().rfind("x.json: not JSON (parse error at line 1, column 1", 0), 0u) << r.error();

    r = SymbolTable::parse(R"({"metadata": 5, "user_types": {}})", "x.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "x.json: not an ISF file (no 'metadata' object)");

    r = SymbolTable::parse(R"({"metadata": {"format": "6.2.0"}, "user_types": {
        "s": {"kind": "struct", "size": 8, "fields": {"f": {"offset": 0}}}}})",
                           "x.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "x.json: user type 's', field 'f': no 'type'");

    r = SymbolTable::parse(R"({"metadata": {"format": "6.2.0"}, "user_types": {
        "s": {"kind": "struct", "size": 8, "fields": {"f": {"offset": 0, "type": "int"}}}}})",
                           "x.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "x.json: user type 's', field 'f': the type is a string, not an object");

    r = SymbolTable::parse(R"({"metadata": {"format": "6.2.0"}, "user_types": {
        "s": {"kind": "struct", "size": 8, "fields": {
            "f": {"offset": 0, "type": {"kind": "array", "subtype": {"kind": "base", "name": "int"}}}}}}})",
                           "x.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "x.json: user type 's', field 'f': array type: no 'count'");

    r = SymbolTable::parse(R"({"metadata": {"format": "6.2.0"}, "user_types": {
        "s": {"kind": "struct", "fields": {}}}})",
                           "x.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "x.json: user type 's': no 'size'");

    r = SymbolTable::parse(R"({"metadata": {"format": "6.2.0"}, "user_types": {},
        "symbols": {"x": {"address": 1, "type": {"name": "int"}}}})",
                           "x.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "x.json: symbol 'x': the type has no 'kind'");

    r = SymbolTable::parse(R"({"metadata": {"format": "6.2.0"}, "user_types": {},
        "enums": {"e": {"size": 4, "base": "int", "constants": {"A": "one"}}}})",
                           "x.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "x.json: enum 'e': 'A' is a string, not an integer");
}

// ---- hostile files ----

// An ISF around `user_types` (the text inside its braces).
std::string isf_with_types(const std::string& user_types) {
    return R"({"metadata": {"format": "6.2.0"}, "user_types": {)" + user_types + "}}";
}

std::string anonymous_field(const std::string& name, const std::string& type, int offset) {
    return "\"" + name + R"(": {"type": {"kind": "struct", "name": ")" + type +
           R"("}, "offset": )" + std::to_string(offset) + R"(, "anonymous": true})";
}

TEST(Isf, AnonymousMembersThatContainTheirOwnTypeGiveNotFound) {
    // "a" holds itself eight times over and "b", which holds "a" again:
    // without a record of the types looked into, the search would take
    // 9^64 steps.
    std::string a;
    for (int i = 0; i < 8; ++i) {
        a += anonymous_field("unnamed_field_" + std::to_string(i), "a", 8 * i) + ", ";
    }
    a += anonymous_field("unnamed_field_b", "b", 64);
    const std::string b = anonymous_field("unnamed_field_0", "a", 0) +
                          R"(, "x": {"type": {"kind": "base", "name": "int"}, "offset": 4})";
    auto t = SymbolTable::parse(isf_with_types(R"("a": {"kind": "struct", "size": 72, "fields": {)" +
                                               a + R"(}}, "b": {"kind": "struct", "size": 8, "fields": {)" +
                                               b + "}}"),
                                "cycle.json");
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->member_offset("a", "nope"), std::nullopt);
    EXPECT_EQ(t->member_offset("b", "nope"), std::nullopt);
    EXPECT_EQ(t->member_offset("a", "x"), 68u);
    EXPECT_EQ(t->member_offset("b", "x"), 4u);
    EXPECT_EQ(t->member_offset("a", "unnamed_field_7"), 56u);
    // Found in "b" through "a": b.unnamed_field_0 (a, @0) . unnamed_field_b @64.
    EXPECT_EQ(t->member_offset("b", "unnamed_field_b"), 64u);
    auto m = t->member("a", "x");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->type.name, "int");
}

// A chain of user types t0 -> t1 -> ... -> t<depth>, each holding the next
// as an anonymous member at offset 1, the last one a member "leaf".
std::string anonymous_chain(int depth) {
    std::string types;
    for (int i = 0; i < depth; ++i) {
        types += "\"t" + std::to_string(i) + R"(": {"kind": "struct", "size": 8, "fields": {)" +
                 anonymous_field("__unnamed", "t" + std::to_string(i + 1), 1) + "}}, ";
    }
    types += "\"t" + std::to_string(depth) + R"(": {"kind": "struct", "size": 8, "fields": {
        "leaf": {"type": {"kind": "base", "name": "int"}, "offset": 0}}})";
    return isf_with_types(types);
}

TEST(Isf, AnonymousMembersAreLookedIntoAtMost64Deep) {
    auto t = SymbolTable::parse(anonymous_chain(64), "chain.json");
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->member_offset("t0", "leaf"), 64u);
    auto u = SymbolTable::parse(anonymous_chain(65), "chain.json");
    ASSERT_TRUE(u.ok()) << u.error();
    EXPECT_EQ(u->member_offset("t0", "leaf"), std::nullopt);
    EXPECT_EQ(u->member_offset("t1", "leaf"), 64u);
}

// A field whose type is a pointer to a pointer to ... `depth` types in all.
std::string pointer_chain(size_t depth) {
    std::string open;
    std::string close;
    open.reserve(depth * 30);
    for (size_t i = 1; i < depth; ++i) {
        open += R"({"kind": "pointer", "subtype": )";
    }
    close.assign(depth - 1, '}');
    return isf_with_types(R"("s": {"kind": "struct", "size": 8, "fields": {"f": {"offset": 0, "type": )" +
                          open + R"({"kind": "base", "name": "int"})" + close + "}}}");
}

TEST(Isf, TypesNestAtMost64Deep) {
    auto t = SymbolTable::parse(pointer_chain(64), "deep.json");
    ASSERT_TRUE(t.ok()) << t.error();
    auto m = t->member("s", "f");
    ASSERT_TRUE(m);
    size_t depth = 1;
    for (const pyrebox::vmi::TypeRef* type = &m->type; type->subtype; type = type->subtype.get()) {
        ++depth;
    }
    EXPECT_EQ(depth, 64u);

    const std::string message =
        "deep.json: user type 's', field 'f': the type nests deeper than 64 levels (a pointer to "
        "a pointer to ...): not a kernel's type";
    auto r = SymbolTable::parse(pointer_chain(65), "deep.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), message);
    // A million deep: the same one error, neither the memory nor the stack
    // of a million types.
    r = SymbolTable::parse(pointer_chain(1000000), "deep.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), message);

    std::string symbol = R"({"metadata": {"format": "6.2.0"}, "user_types": {}, "symbols": {"x": {"address": 1, "type": )";
    for (int i = 0; i < 100; ++i) {
        symbol += R"({"kind": "pointer", "subtype": )";
    }
    r = SymbolTable::parse(symbol, "deep.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(),
              "deep.json: symbol 'x': the type nests deeper than 64 levels (a pointer to a pointer "
              "to ...): not a kernel's type");
}

TEST(Isf, ObjectsAndArraysNestAtMost128Deep) {
    const std::string head = R"({"metadata": {"format": "6.2.0"}, "user_types": {}, "extra": )";
    // 126 arrays: with the top level and nothing else, 127 levels.
    auto t = SymbolTable::parse(head + std::string(126, '[') + std::string(126, ']') + "}", "n.json");
    ASSERT_TRUE(t.ok()) << t.error();
    const std::string message =
        "n.json: the document nests deeper than 128 levels (an ISF nests about 10 deep)";
    auto r = SymbolTable::parse(head + std::string(128, '['), "n.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), message);
    r = SymbolTable::parse(head + std::string(1000000, '['), "n.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), message);
    std::string objects = R"({"metadata": {"format": "6.2.0"}, "user_types": {}, "symbols": {"x": {"address": 1, "more": )";
    for (int i = 0; i < 200; ++i) {
        objects += R"({"a": )";
    }
    r = SymbolTable::parse(objects, "n.json");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(),
              "n.json: symbol 'x' nests deeper than 128 levels (an ISF nests about 10 deep)");
}

// JSON that starts an ISF, then `spaces` blanks: valid as far as it goes.
std::string blank_isf(size_t spaces) {
    return R"({"metadata": {"format": "6.2.0"}, "user_types": {})" + std::string(spaces, ' ') + "}";
}

std::string over_the_cap(const std::string& path, bool unpacked, const std::string& cap) {
    return path + ": " + (unpacked ? "unpacks to " : "") + "more than " + cap +
           " of JSON, the most an ISF may hold (a kernel's is tens of MiB): not a kernel's symbol "
           "table";
}

TEST_F(IsfFiles, XzBombsStopAtTheCap) {
    const uint64_t cap = 1 << 20;
    const std::string bomb = write("bomb.json.xz", xz(blank_isf(cap)));
    auto r = SymbolTable::load(bomb, cap);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), over_the_cap(bomb, true, "1 MiB"));
    // Up to the cap is fine.
    auto t = SymbolTable::load(write("fits.json.xz", xz(blank_isf(cap - 100))), cap);
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_EQ(t->format(), "6.2.0");
}

TEST_F(IsfFiles, TheDefaultCapIs256MiB) {
    EXPECT_EQ(SymbolTable::kMaxJsonBytes, uint64_t{256} << 20);
    // 33 concatenated streams of 8 MiB each: 264 MiB, refused from what
    // the file's indexes say, before anything is unpacked.
    const std::string stream = xz(std::string(8 << 20, ' '));
    std::string bomb;
    for (int i = 0; i < 33; ++i) {
        bomb += stream;
    }
    const std::string p = write("big.json.xz", bomb);
    auto r = SymbolTable::load(p);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), over_the_cap(p, true, "256 MiB"));
}

TEST_F(IsfFiles, PlainFilesStopAtTheCap) {
    const uint64_t cap = 1 << 20;
    const std::string big = write("big.json", blank_isf(cap));
    auto r = SymbolTable::load(big, cap);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), over_the_cap(big, false, "1 MiB"));
    auto t = SymbolTable::load(write("fits.json", blank_isf(cap - 100)), cap);
    ASSERT_TRUE(t.ok()) << t.error();
}

// xz data made by liblzma's streaming encoder: its block header gives no
// sizes, only the index does.
std::string xz_stream(const std::string& text) {
    lzma_stream strm = LZMA_STREAM_INIT;
    EXPECT_EQ(lzma_easy_encoder(&strm, 0, LZMA_CHECK_CRC32), LZMA_OK);
    std::string out(lzma_stream_buffer_bound(text.size()), '\0');
    strm.next_in = reinterpret_cast<const uint8_t*>(text.data());
    strm.avail_in = text.size();
    strm.next_out = reinterpret_cast<uint8_t*>(out.data());
    strm.avail_out = out.size();
    EXPECT_EQ(lzma_code(&strm, LZMA_FINISH), LZMA_STREAM_END);
    out.resize(strm.total_out);
    lzma_end(&strm);
    return out;
}

void put_crc32(std::string& bytes, size_t from, size_t length) {
    const uint32_t crc =
        lzma_crc32(reinterpret_cast<const uint8_t*>(bytes.data()) + from, length, 0);
    for (int i = 0; i < 4; ++i) {
        bytes[from + length + i] = static_cast<char>((crc >> (8 * i)) & 0xFF);
    }
}

TEST_F(IsfFiles, AnXzIndexThatUnderstatesTheSizeIsCorrupt) {
    // 20000 bytes whose index says 17000 (both 3-byte numbers), its CRC
    // made right: the output is sized by the index and may not grow.
    std::string data = xz_stream(blank_isf(20000 - blank_isf(0).size()));
    const size_t footer = data.size() - 12;
    const size_t index_size =
        (static_cast<uint8_t>(data[footer + 4]) | static_cast<uint8_t>(data[footer + 5]) << 8) * 4 + 4;
    const size_t index = footer - index_size;
    ASSERT_EQ(data[index], 0);      // the index indicator
    ASSERT_EQ(data[index + 1], 1);  // one record
    size_t at = index + 2;
    while (data[at] & 0x80) ++at;  // past the unpadded size
    ++at;
    // The uncompressed size: 20000 = 0x20 | 0x80, 0x1c | 0x80, 0x01.
    ASSERT_EQ(static_cast<uint8_t>(data[at]), 0xA0);
    const uint32_t lie = 17000;
    data[at] = static_cast<char>((lie & 0x7F) | 0x80);
    data[at + 1] = static_cast<char>(((lie >> 7) & 0x7F) | 0x80);
    data[at + 2] = static_cast<char>(lie >> 14);
    put_crc32(data, index, index_size - 4);
    const std::string p = write("lie.json.xz", data);
    auto r = SymbolTable::load(p);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), p + ": corrupt xz data (it unpacks to more than its index says)");
}

TEST_F(IsfFiles, AnXzHeaderAskingForAHugeDictionaryIsRefused) {
    std::string data = xz_stream(blank_isf(100));
    // Stream header (12 bytes), then the block header: its size, flags
    // (one filter, no sizes), the LZMA2 filter (id 0x21, one byte of
    // properties: the dictionary size), padding, CRC32.
    const size_t block = 12;
    const size_t header_size = (static_cast<uint8_t>(data[block]) + 1) * 4;
    ASSERT_EQ(data[block + 1], 0);
    ASSERT_EQ(data[block + 2], 0x21);
    ASSERT_EQ(data[block + 3], 1);
    data[block + 4] = 40;  // 4 GiB - 1
    put_crc32(data, block, header_size - 4);
    const std::string p = write("dict.json.xz", data);
    auto r = SymbolTable::load(p);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), p + ": corrupt xz data (it needs more than 256 MiB of memory to unpack; "
                             "xz -9 needs 65 MiB)");
}

TEST(Isf, CopiesShareTheTables) {
    auto t = SymbolTable::parse(kIsf, "test");
    ASSERT_TRUE(t.ok()) << t.error();
    SymbolTable copy = *t;
    EXPECT_EQ(copy.member_offset("task_struct", "comm"), 2976u);
    EXPECT_EQ(copy.origin(), "test");
}

}  // namespace
