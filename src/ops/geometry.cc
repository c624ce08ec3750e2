// Op family: GridSample, AffineGrid, RoiAlign, Col2Im, DeformConv, NonMaxSuppression, CenterCropPad. (Not yet implemented.)
#include "ops/families.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_geometry(Registry& r) { (void)r; }

}  // namespace kiln::ops
