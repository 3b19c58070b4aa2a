// Placeholder until the quantization kernels land.
#include "kernels/cpu/variants.h"
namespace atrium::kernels::avx512 { void FillQuant(CpuKernels&) {} }
