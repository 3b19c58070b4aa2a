// Placeholder until the quantization kernels land (owned by the kernels-quant helper).
#include "kernels/cpu/variants.h"
namespace atrium::kernels::ref { void FillQuant(CpuKernels&) {} }
