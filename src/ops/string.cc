// Op family: StringSplit, StringNormalizer, StringConcat, RegexFullMatch, TfIdfVectorizer. (Not yet implemented.)
#include "ops/families.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_string(Registry& r) { (void)r; }

}  // namespace kiln::ops
