// Placeholder until the quantization kernels land.
#include "kernels/cpu/variants.h"
namespace atrium::kernels::avx2 { void FillQuant(CpuKernels&) {} }
