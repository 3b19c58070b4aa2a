// Placeholder until the float kernels land (owned by the kernels-float helper).
#include "kernels/cpu/variants.h"
namespace atrium::kernels::ref { void FillFloat(CpuKernels&) {} }
