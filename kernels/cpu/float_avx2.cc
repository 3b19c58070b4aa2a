// Placeholder until the float kernels land.
#include "kernels/cpu/variants.h"
namespace atrium::kernels::avx2 { void FillFloat(CpuKernels&) {} }
