// translate: prints kdmp-parser's translation of each virtual address given, through the
// dump's own DirectoryTableBase. Output lines: "T <va> <pa>" or "T <va> none".
// Build: g++ -O1 -std=c++20 -I <kdmp-parser>/src/lib translate.cc -o translate
#include "kdmp-parser.h"
#include <cstdio>
#include <cstdlib>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: translate DUMP VA...\n");
    return 2;
  }
  kdmpparser::KernelDumpParser dmp;
  if (!dmp.Parse(argv[1])) {
    fprintf(stderr, "parse failed\n");
    return 1;
  }
  for (int i = 2; i < argc; i++) {
    uint64_t va = strtoull(argv[i], nullptr, 0);
    auto pa = dmp.VirtTranslate(va);
    if (pa) {
      printf("T 0x%llX 0x%llX\n", (unsigned long long)va, (unsigned long long)*pa);
    } else {
      printf("T 0x%llX none\n", (unsigned long long)va);
    }
  }
  return 0;
}
