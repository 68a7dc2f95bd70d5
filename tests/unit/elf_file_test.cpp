// ElfFile against small programs compiled by the test itself (PIE, non-PIE, a shared object), checked
// against binutils' nm and readelf and against values the test chose (build-id, a note, a magic constant).
#include "elf/elf_file.h"

#include <elf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "../common/shell.h"

namespace memlens::elf {
namespace {

namespace fs = std::filesystem;

constexpr char kBuildId[] = "0123456789abcdef0123456789abcdef01234567";
constexpr uint64_t kMagic = 0x1122334455667788ull;

constexpr char kSource[] = R"(
#include <stdio.h>
const unsigned long long memlens_magic = 0x1122334455667788ull;
int memlens_counter = 5;
__attribute__((noinline)) int memlens_alpha(int x) { return x * 3 + memlens_counter; }
__attribute__((noinline)) int memlens_beta(int x) { return memlens_alpha(x) + (int)memlens_magic; }
static __attribute__((noinline, used)) int memlens_local(int x) { return x - 1; }
int main(int argc, char** argv) { (void)argv; printf("%d\n", memlens_beta(argc) + memlens_local(argc)); return 0; }
/* A note of our own: owner "memlens", type 7, descriptor "hello\0\0\0". */
__asm__(".pushsection .note.memlens,\"a\",@note\n"
        ".balign 4\n"
        ".long 8\n .long 8\n .long 7\n"
        ".asciz \"memlens\"\n"
        ".ascii \"hello\\0\\0\\0\"\n"
        ".popsection\n");
)";

using memlens::testing::run;

// name -> address of the defined symbols nm lists (with -D: the dynamic table only).
std::map<std::string, uint64_t> nm_symbols(const std::string& path, bool dynamic) {
  std::map<std::string, uint64_t> out;
  std::istringstream in(run("nm --defined-only " + std::string(dynamic ? "-D " : "") + path));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string addr, type, name;
    if (ls >> addr >> type >> name) out[name] = std::stoull(addr, nullptr, 16);
  }
  return out;
}

class ElfFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/memlens-elf-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ / "prog.c") << kSource;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Compiles prog.c with extra flags; returns the output path or "" (the test then fails).
  std::string build(const std::string& name, const std::string& flags) {
    std::string out = (dir_ / name).string();
    std::string cmd = "cc -O1 -g0 " + flags + " -Wl,--build-id=0x" + kBuildId + " -o " + out + " " +
                      (dir_ / "prog.c").string() + " 2>&1";
    std::string log = run(cmd);
    if (!fs::exists(out)) {
      ADD_FAILURE() << "compiler failed: " << cmd << "\n" << log;
      return "";
    }
    return out;
  }

  fs::path dir_;
};

void check_symbols_against_nm(const ElfFile& f, const std::string& path) {
  auto truth = nm_symbols(path, false);
  for (const char* name :
       {"memlens_alpha", "memlens_beta", "memlens_local", "main", "memlens_counter", "memlens_magic"}) {
    ASSERT_TRUE(truth.count(name)) << name << " missing from nm's output";
    auto sym = f.find_symbol(name);
    ASSERT_TRUE(sym.has_value()) << name;
    EXPECT_EQ(sym->address, truth[name]) << name;
  }
  EXPECT_TRUE(f.find_symbol("memlens_alpha")->is_function);
  EXPECT_FALSE(f.find_symbol("memlens_counter")->is_function);
  EXPECT_FALSE(f.find_symbol("no_such_symbol").has_value());

  const auto& all = f.symbols();
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(),
                             [](const Symbol& a, const Symbol& b) { return a.address < b.address; }));
  auto prefixed = f.find_symbols_with_prefix("memlens_");
  std::set<std::string> names;
  for (const auto& s : prefixed) names.insert(s.name);
  std::set<std::string> want;
  for (const auto& [name, addr] : truth)
    if (name.rfind("memlens_", 0) == 0) want.insert(name);
  EXPECT_EQ(names, want);

  // Every address inside a function maps back to it; the byte after its end does not.
  for (const char* name : {"memlens_alpha", "memlens_beta", "main"}) {
    auto sym = *f.find_symbol(name);
    ASSERT_GT(sym.size, 0u) << name;
    for (uint64_t at : {sym.address, sym.address + sym.size / 2, sym.address + sym.size - 1}) {
      const Symbol* s = f.symbol_at(at);
      ASSERT_NE(s, nullptr) << name << " at " << std::hex << at;
      EXPECT_EQ(s->name, name);
    }
    const Symbol* after = f.symbol_at(sym.address + sym.size);
    if (after) {
      EXPECT_NE(after->name, name);
    }
  }
  EXPECT_EQ(f.symbol_at(0), nullptr);
}

void check_layout(const ElfFile& f, const std::string& path) {
  EXPECT_EQ(f.build_id(), kBuildId);

  bool found_note = false;
  for (const Note& n : f.notes()) {
    if (n.owner != "memlens") continue;
    found_note = true;
    EXPECT_EQ(n.type, 7u);
    EXPECT_EQ(n.desc, std::string("hello\0\0\0", 8));
    EXPECT_EQ(n.section_address, f.section_address(".note.memlens").value_or(~0ull));
  }
  EXPECT_TRUE(found_note);
  bool found_build_id_note = false;
  for (const Note& n : f.notes())
    if (n.owner == "GNU" && n.type == NT_GNU_BUILD_ID) found_build_id_note = true;
  EXPECT_TRUE(found_build_id_note);

  // .text's address as readelf reports it.
  std::istringstream sections(run("readelf -W -S " + path));
  std::string line;
  uint64_t text_addr = 0;
  while (std::getline(sections, line)) {
    auto pos = line.find(" .text ");
    if (pos == std::string::npos) continue;
    std::istringstream ls(line.substr(pos));
    std::string name, type, addr;
    ls >> name >> type >> addr;
    text_addr = std::stoull(addr, nullptr, 16);
  }
  ASSERT_NE(text_addr, 0u);
  EXPECT_EQ(f.section_address(".text"), text_addr);
  EXPECT_FALSE(f.section_address(".no_such_section").has_value());

  // vaddr -> file offset: the bytes at the computed offset are the constant the program defines.
  auto magic = f.find_symbol("memlens_magic");
  ASSERT_TRUE(magic.has_value());
  auto off = f.vaddr_to_file_offset(magic->address);
  ASSERT_TRUE(off.has_value());
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(*off));
  uint64_t value = 0;
  in.read(reinterpret_cast<char*>(&value), sizeof value);
  EXPECT_EQ(value, kMagic);
  EXPECT_EQ(f.file_offset_to_vaddr(*off), magic->address);

  auto alpha = *f.find_symbol("memlens_alpha");
  auto alpha_off = f.vaddr_to_file_offset(alpha.address);
  ASSERT_TRUE(alpha_off.has_value());
  EXPECT_EQ(f.file_offset_to_vaddr(*alpha_off), alpha.address);
  bool in_exec = false;
  for (const auto& seg : f.load_segments())
    if (seg.exec && alpha.address >= seg.vaddr && alpha.address < seg.vaddr + seg.memsz) in_exec = true;
  EXPECT_TRUE(in_exec);
  EXPECT_FALSE(f.vaddr_to_file_offset(~0ull - 16).has_value());
}

TEST_F(ElfFileTest, PieExecutable) {
  std::string path = build("prog-pie", "-fPIE -pie");
  ASSERT_FALSE(path.empty());
  auto f = ElfFile::open_path(path);
  ASSERT_TRUE(f.ok()) << f.error().describe();
  EXPECT_TRUE((*f)->is_dyn());
  EXPECT_TRUE((*f)->has_symtab());
  EXPECT_TRUE((*f)->has_dynsym());
  EXPECT_EQ((*f)->display_name(), path);
  check_symbols_against_nm(**f, path);
  check_layout(**f, path);
}

TEST_F(ElfFileTest, NonPieExecutable) {
  std::string path = build("prog-nopie", "-fno-PIE -no-pie");
  ASSERT_FALSE(path.empty());
  auto f = ElfFile::open_path(path);
  ASSERT_TRUE(f.ok()) << f.error().describe();
  EXPECT_FALSE((*f)->is_dyn());
  EXPECT_EQ((*f)->elf_type(), ET_EXEC);
  check_symbols_against_nm(**f, path);
  check_layout(**f, path);
  // A non-PIE executable is linked at a fixed address well above zero.
  EXPECT_GE((*f)->find_symbol("main")->address, 0x400000u);
}

TEST_F(ElfFileTest, SharedObjectPrefersDynsym) {
  std::string path = build("libprog.so", "-fPIC -shared");
  ASSERT_FALSE(path.empty());
  auto f = ElfFile::open_path(path);
  ASSERT_TRUE(f.ok()) << f.error().describe();
  EXPECT_TRUE((*f)->is_dyn());
  auto dyn = nm_symbols(path, true);
  ASSERT_TRUE(dyn.count("memlens_alpha"));
  auto alpha = (*f)->find_symbol("memlens_alpha");
  ASSERT_TRUE(alpha.has_value());
  EXPECT_TRUE(alpha->from_dynsym);
  EXPECT_EQ(alpha->address, dyn["memlens_alpha"]);
  // A static function is only in .symtab.
  auto local = (*f)->find_symbol("memlens_local");
  ASSERT_TRUE(local.has_value());
  EXPECT_FALSE(local->from_dynsym);

  // Stripped of .symtab: the exported names remain, the static one is gone.
  std::string stripped = (dir_ / "libprog-stripped.so").string();
  run("objcopy --strip-all " + path + " " + stripped);
  auto s = ElfFile::open_path(stripped);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_FALSE((*s)->has_symtab());
  EXPECT_TRUE((*s)->has_dynsym());
  EXPECT_TRUE((*s)->find_symbol("memlens_alpha").has_value());
  EXPECT_FALSE((*s)->find_symbol("memlens_local").has_value());
  EXPECT_EQ((*s)->build_id(), kBuildId);
}

TEST_F(ElfFileTest, OpenByDescriptorKeepsCallersFd) {
  std::string path = build("prog-fd", "-fPIE -pie");
  ASSERT_FALSE(path.empty());
  auto opened = open_regular_file(path);
  ASSERT_TRUE(opened.ok());
  {
    auto f = ElfFile::open(opened->fd.get(), "by-fd");
    ASSERT_TRUE(f.ok()) << f.error().describe();
    EXPECT_EQ((*f)->display_name(), "by-fd");
    EXPECT_EQ((*f)->build_id(), kBuildId);
    EXPECT_EQ((*f)->inode(), static_cast<uint64_t>(opened->inode));
  }
  // The ElfFile closed its duplicate only.
  char c;
  EXPECT_EQ(pread(opened->fd.get(), &c, 1, 0), 1);
}

TEST_F(ElfFileTest, RejectsWhatIsNotAnElf) {
  std::string text = (dir_ / "not-elf").string();
  std::ofstream(text) << "this is not an ELF file at all\n";
  auto r = ElfFile::open_path(text);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not an ELF"), std::string::npos) << r.error().describe();

  EXPECT_FALSE(ElfFile::open_path((dir_ / "missing").string()).ok());

  std::string real = build("prog-link", "-fPIE -pie");
  ASSERT_FALSE(real.empty());
  fs::create_symlink(real, dir_ / "link");
  auto link = ElfFile::open_path((dir_ / "link").string());
  ASSERT_FALSE(link.ok());
  EXPECT_NE(link.error().message.find("symbolic link"), std::string::npos) << link.error().describe();
}

TEST_F(ElfFileTest, TruncatedFilesDoNotCrash) {
  std::string path = build("prog-trunc", "-fPIE -pie");
  ASSERT_FALSE(path.empty());
  auto size = fs::file_size(path);
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(bytes.size(), size);
  // Cut everywhere from the header to just before the end: each open either fails or yields a consistent
  // object whose queries stay within bounds.
  for (size_t cut : {size_t{16}, size_t{64}, size_t{200}, size / 4, size / 2, size - 100, size - 1}) {
    std::string p = (dir_ / ("cut-" + std::to_string(cut))).string();
    std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(cut));
    auto f = ElfFile::open_path(p);
    if (!f.ok()) continue;
    (void)(*f)->symbols();
    (void)(*f)->notes();
    (void)(*f)->symbol_at(0x1000);
  }
}

}  // namespace
// What the dynamic loader reads: the libraries a program needs and its RUNPATH, as readelf -d shows them.
TEST_F(ElfFileTest, DynamicSectionNeededAndRunpath) {
  std::string path = build("needs",
                           "-pie -fPIE -Wl,--no-as-needed -lm -Wl,-rpath,'$ORIGIN/../lib:/opt/x' "
                           "-Wl,--enable-new-dtags");
  ASSERT_FALSE(path.empty());
  auto f = ElfFile::open_path(path);
  ASSERT_TRUE(f.ok()) << f.error().describe();
  auto dyn = (*f)->dynamic_info();
  EXPECT_NE(std::find(dyn.needed.begin(), dyn.needed.end(), "libc.so.6"), dyn.needed.end());
  EXPECT_NE(std::find(dyn.needed.begin(), dyn.needed.end(), "libm.so.6"), dyn.needed.end());
  EXPECT_EQ(dyn.search_path, (std::vector<std::string>{"$ORIGIN/../lib", "/opt/x"}));
  // The dynamic loader, as readelf reads PT_INTERP: "[Requesting program interpreter: /lib64/ld-...]".
  std::string interp = run("readelf -lW " + path + " | sed -n 's/.*program interpreter: \\(.*\\)]/\\1/p'");
  while (!interp.empty() && (interp.back() == '\n' || interp.back() == ' ')) interp.pop_back();
  ASSERT_FALSE(interp.empty()) << "readelf names no interpreter";
  EXPECT_EQ(dyn.interpreter, interp);
  // A shared object has none.
  std::string lib = build("libneeds.so", "-fPIC -shared");
  if (!lib.empty()) {
    EXPECT_EQ((*ElfFile::open_path(lib))->dynamic_info().interpreter, "");
  }
  // A static program has no dynamic section at all, and no interpreter.
  std::string st = build("static", "-static");
  if (!st.empty()) {
    auto s = ElfFile::open_path(st);
    ASSERT_TRUE(s.ok());
    EXPECT_TRUE((*s)->dynamic_info().needed.empty());
    EXPECT_EQ((*s)->dynamic_info().interpreter, "");
  }
}

}  // namespace memlens::elf
