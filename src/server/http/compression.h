// gzip / deflate (zlib stream) bodies for HTTP's Content-Encoding and
// Accept-Encoding, as tritonclient sends and expects them.
#pragma once

#include <string>
#include <string_view>

#include "kiln/status.h"

namespace kiln::server {

enum class Encoding { kIdentity, kGzip, kDeflate };

// Parses a Content-Encoding value; Unimplemented for anything else.
Result<Encoding> parse_content_encoding(std::string_view value);
// The best encoding an Accept-Encoding value allows (q-weights honoured).
Encoding choose_response_encoding(std::string_view accept);
// Decompresses at most `max_bytes` of output; larger is an error.
Result<std::string> decompress(std::string_view data, Encoding encoding, size_t max_bytes);
Result<std::string> compress(std::string_view data, Encoding encoding);
const char* encoding_name(Encoding encoding);

}  // namespace kiln::server
