// A protobuf message as JSON the way Triton renders model configurations:
// proto field names, every scalar field printed (defaults included), enums
// by name, 64-bit integers as JSON numbers, maps as objects.
#pragma once

#include <string>

namespace google::protobuf {
class Message;
}

namespace kiln::server {

std::string message_to_json(const google::protobuf::Message& message);

}  // namespace kiln::server
