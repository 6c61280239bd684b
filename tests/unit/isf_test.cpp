#include "vmi/isf.h"

#include <gtest/gtest.h>
#include <lzma.h>

#include <cstdio>
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

TEST(Isf, CopiesShareTheTables) {
    auto t = SymbolTable::parse(kIsf, "test");
    ASSERT_TRUE(t.ok()) << t.error();
    SymbolTable copy = *t;
    EXPECT_EQ(copy.member_offset("task_struct", "comm"), 2976u);
    EXPECT_EQ(copy.origin(), "test");
}

}  // namespace
