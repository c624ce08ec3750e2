// Op family: DFT, STFT, Hann/Hamming/BlackmanWindow, MelWeightMatrix. (Not yet implemented.)
#include "ops/families.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_signal(Registry& r) { (void)r; }

}  // namespace kiln::ops
