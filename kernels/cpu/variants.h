// Internal: each ISA's files fill their part of a CpuKernels table. The
// table of an ISA starts as a copy of the scalar one (kernels/cpu/isa.cc).
#pragma once

#include "kernels/kernels.h"

namespace atrium::kernels {
namespace ref {
void FillQuant(CpuKernels& t);  // quantize_row, dequantize_row, vec_dot, matmul_rows
void FillFloat(CpuKernels& t);  // rms_norm ... attention
}  // namespace ref
namespace avx2 {
void FillQuant(CpuKernels& t);
void FillFloat(CpuKernels& t);
}  // namespace avx2
namespace avx512 {
void FillQuant(CpuKernels& t);
void FillQuantAmx(CpuKernels& t);  // over FillQuant: packed matmuls on AMX tiles
void FillFloat(CpuKernels& t);
}  // namespace avx512
}  // namespace atrium::kernels
