#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "kernels/cpu/variants.h"
#include "kernels/kernels.h"

namespace atrium::kernels {
namespace {

// The state components the OS saves on a context switch (XCR0), low half.
uint32_t OsSavedState() {
  uint32_t eax, edx;
  __asm__("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return eax;
}

bool OsSavesAvx512State() { return (OsSavedState() & 0xe6) == 0xe6; }  // XMM, YMM, opmask, ZMM_Hi256, Hi16_ZMM
bool OsSavesAvxState() { return (OsSavedState() & 0x6) == 0x6; }

// Linux hands out the 8 KiB tile state only to a process that asks for it
// (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); without leave, the
// first tile instruction faults. The leave covers every thread.
bool OsGrantsAmx() {
  if ((OsSavedState() & 0x60000) != 0x60000) return false;  // XTILECFG, XTILEDATA
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

Isa Detect() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Isa::kScalar;
  const bool osxsave = c & bit_OSXSAVE;
  const bool fma = c & bit_FMA;
  const bool f16c = c & bit_F16C;
  if (!osxsave || !OsSavesAvxState()) return Isa::kScalar;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return Isa::kScalar;
  const bool avx2 = b & bit_AVX2;
  const bool avx512 = (b & bit_AVX512F) && (b & bit_AVX512BW) && (b & bit_AVX512DQ) &&
                      (b & bit_AVX512VL) && (c & bit_AVX512VNNI);
  const bool amx = (d & (1u << 24)) && (d & (1u << 25));  // AMX-TILE, AMX-INT8
  if (avx512 && avx2 && fma && f16c && OsSavesAvx512State()) return amx && OsGrantsAmx() ? Isa::kAmx : Isa::kAvx512;
  if (avx2 && fma && f16c) return Isa::kAvx2;
  return Isa::kScalar;
}

CpuKernels Build(Isa isa) {
  CpuKernels t{};
  t.isa = Isa::kScalar;
  t.name = "scalar";
  ref::FillQuant(t);
  ref::FillFloat(t);
  if (isa >= Isa::kAvx2) {
    t.isa = Isa::kAvx2;
    t.name = "avx2";
    avx2::FillQuant(t);
    avx2::FillFloat(t);
  }
  if (isa >= Isa::kAvx512) {
    t.isa = Isa::kAvx512;
    t.name = "avx512";
    avx512::FillQuant(t);
    avx512::FillFloat(t);
  }
  if (isa == Isa::kAmx) {
    t.isa = Isa::kAmx;
    t.name = "amx";
    avx512::FillQuantAmx(t);
  }
  return t;
}

struct Tables {
  Isa detected = Detect();
  CpuKernels scalar = Build(Isa::kScalar);
  CpuKernels avx2 = detected >= Isa::kAvx2 ? Build(Isa::kAvx2) : CpuKernels{};
  CpuKernels avx512 = detected >= Isa::kAvx512 ? Build(Isa::kAvx512) : CpuKernels{};
  CpuKernels amx = detected >= Isa::kAmx ? Build(Isa::kAmx) : CpuKernels{};
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

}  // namespace

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kAmx: return "amx";
  }
  return "?";
}

DType DotPartner(DType weight) {
  switch (weight) {
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kQ8_0: return DType::kQ8_0;
    case DType::kQ4_1:
    case DType::kQ5_1: return DType::kQ8_1;
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K: return DType::kQ8_K;
    default: return DType::kF32;
  }
}

Isa DetectIsa() { return GetTables().detected; }

const CpuKernels* CpuFor(Isa isa) {
  const Tables& t = GetTables();
  if (isa > t.detected) return nullptr;
  switch (isa) {
    case Isa::kScalar: return &t.scalar;
    case Isa::kAvx2: return &t.avx2;
    case Isa::kAvx512: return &t.avx512;
    case Isa::kAmx: return &t.amx;
  }
  return nullptr;
}

const CpuKernels& Cpu() {
  static const CpuKernels* chosen = [] {
    Isa isa = DetectIsa();
    if (const char* env = std::getenv("ATRIUM_ISA")) {
      Isa wanted = isa;
      if (std::strcmp(env, "scalar") == 0) wanted = Isa::kScalar;
      if (std::strcmp(env, "avx2") == 0) wanted = Isa::kAvx2;
      if (std::strcmp(env, "avx512") == 0) wanted = Isa::kAvx512;
      if (std::strcmp(env, "amx") == 0) wanted = Isa::kAmx;
      if (wanted < isa) isa = wanted;
    }
    return CpuFor(isa);
  }();
  return *chosen;
}

}  // namespace atrium::kernels
