// kdmpcheck: prints what kdmp-parser (github.com/0vercl0k/kdmp-parser, MIT, not part of
// crashkey: its unmodified source lives in ../shared/oracles/kdmp-parser) reads from a
// Windows kernel dump, in the format of crashkey's dump/internal/dumpinfo, so that
// scripts/test.d/30-dump.sh can compare the two readers line by line:
//
//   kdmpcheck DUMP PAGES > summary.txt
//
// summary.txt holds the header fields, the header's memory descriptor (full dumps), the
// number of physical pages and the runs of consecutive pages; PAGES receives every physical
// page in address order, each as its address (u64, little-endian) then its 4096 bytes, for
// sha256sum and cmp. Built by 30-dump.sh with
//   g++ -O2 -std=c++20 -I kdmp-parser/src/lib -I GENERATED kdmpcheck.cc
// (GENERATED holds kdmp-parser-version.h, configured from its .in file).
#include "kdmp-parser.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <vector>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: kdmpcheck DUMP PAGES\n");
    return 2;
  }
  kdmpparser::KernelDumpParser dmp;
  if (!dmp.Parse(argv[1])) {
    fprintf(stderr, "kdmpcheck: kdmp-parser could not parse %s\n", argv[1]);
    return 1;
  }
  const kdmpparser::HEADER64 &h = dmp.GetDumpHeader();
  printf("type %" PRIu32 "\n", uint32_t(h.DumpType));
  printf("DirectoryTableBase 0x%" PRIx64 "\n", h.DirectoryTableBase);
  printf("PfnDatabase 0x%" PRIx64 "\n", h.PfnDatabase);
  printf("PsLoadedModuleList 0x%" PRIx64 "\n", h.PsLoadedModuleList);
  printf("PsActiveProcessHead 0x%" PRIx64 "\n", h.PsActiveProcessHead);
  printf("MachineImageType 0x%" PRIx32 "\n", h.MachineImageType);
  printf("NumberProcessors %" PRIu32 "\n", h.NumberProcessors);
  const kdmpparser::BugCheckParameters_t bc = dmp.GetBugCheckParameters();
  printf("BugCheckCode 0x%" PRIx32 "\n", bc.BugCheckCode);
  for (size_t i = 0; i < bc.BugCheckCodeParameter.size(); i++) {
    printf("BugCheckParameter%zu 0x%" PRIx64 "\n", i + 1, bc.BugCheckCodeParameter[i]);
  }
  printf("KdDebuggerDataBlock 0x%" PRIx64 "\n", h.KdDebuggerDataBlock);
  if (h.DumpType == kdmpparser::DumpType_t::BMPDump || h.DumpType == kdmpparser::DumpType_t::LiveKernelBitmapDump) {
    const kdmpparser::BMP_HEADER64 &b = h.u3.BmpHeader;
    printf("bitmap FirstPage 0x%" PRIx64 " TotalPresentPages %" PRIu64 " Pages %" PRIu64 "\n", b.FirstPage,
           b.TotalPresentPages, b.Pages);
  }
  if (h.DumpType == kdmpparser::DumpType_t::FullDump) {
    const kdmpparser::PHYSMEM_DESC &d = h.u1.PhysicalMemoryBlock;
    printf("descriptor %" PRIu32 " runs %" PRIu64 " pages\n", d.NumberOfRuns, d.NumberOfPages);
    for (uint32_t i = 0; i < d.NumberOfRuns; i++) {
      printf("descriptor-run 0x%" PRIx64 " 0x%" PRIx64 "\n", d.Run[i].BasePage, d.Run[i].PageCount);
    }
  }

  const kdmpparser::Physmem_t &mem = dmp.GetPhysmem();
  std::vector<uint64_t> addrs;
  addrs.reserve(mem.size());
  for (const auto &[pa, page] : mem) {
    addrs.push_back(pa);
  }
  std::sort(addrs.begin(), addrs.end());
  printf("pages %zu\n", addrs.size());

  FILE *out = fopen(argv[2], "wb");
  if (!out) {
    perror(argv[2]);
    return 1;
  }
  uint64_t runStart = 0, runPages = 0;
  for (const uint64_t pa : addrs) {
    if (runPages && pa == runStart + runPages * kdmpparser::Page::Size) {
      runPages++;
    } else {
      if (runPages) {
        printf("run 0x%" PRIx64 " 0x%" PRIx64 "\n", runStart, runPages);
      }
      runStart = pa;
      runPages = 1;
    }
    const uint8_t *page = dmp.GetPhysicalPage(pa);
    uint8_t le[8];
    for (int i = 0; i < 8; i++) {
      le[i] = uint8_t(pa >> (8 * i));
    }
    if (fwrite(le, 1, 8, out) != 8 || fwrite(page, 1, kdmpparser::Page::Size, out) != kdmpparser::Page::Size) {
      perror(argv[2]);
      return 1;
    }
  }
  if (runPages) {
    printf("run 0x%" PRIx64 " 0x%" PRIx64 "\n", runStart, runPages);
  }
  if (fclose(out) != 0) {
    perror(argv[2]);
    return 1;
  }
  return 0;
}
