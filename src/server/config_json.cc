#include "server/config_json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>

namespace kiln::server {
namespace {

namespace pb = google::protobuf;
using Writer = rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                                 rapidjson::CrtAllocator, rapidjson::kWriteNanAndInfFlag>;

void write_message(Writer& w, const pb::Message& m);

void write_string(Writer& w, const std::string& s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }

void write_scalar(Writer& w, const pb::Message& m, const pb::FieldDescriptor* f, int index) {
  const pb::Reflection* r = m.GetReflection();
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      w.Int(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_INT64:
      w.Int64(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      w.Uint(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      w.Uint64(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      w.Double(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      w.Double(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      w.Bool(rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_ENUM:
      write_string(w, (rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f))->name());
      break;
    case pb::FieldDescriptor::CPPTYPE_STRING:
      write_string(w, rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      write_message(w, rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f));
      break;
  }
}

std::string map_key(const pb::Message& entry) {
  const pb::FieldDescriptor* k = entry.GetDescriptor()->FindFieldByName("key");
  const pb::Reflection* r = entry.GetReflection();
  switch (k->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_STRING:
      return r->GetString(entry, k);
    case pb::FieldDescriptor::CPPTYPE_INT32:
      return std::to_string(r->GetInt32(entry, k));
    case pb::FieldDescriptor::CPPTYPE_INT64:
      return std::to_string(r->GetInt64(entry, k));
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      return std::to_string(r->GetUInt32(entry, k));
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      return std::to_string(r->GetUInt64(entry, k));
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return r->GetBool(entry, k) ? "true" : "false";
    default:
      return "";
  }
}

void write_message(Writer& w, const pb::Message& m) {
  const pb::Descriptor* d = m.GetDescriptor();
  const pb::Reflection* r = m.GetReflection();
  w.StartObject();
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    // Unset message fields and unset members of a oneof are left out, as
    // protobuf's JSON printer does; scalars are always printed.
    if (!f->is_repeated() && (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE || f->containing_oneof()) &&
        !r->HasField(m, f)) {
      continue;
    }
    w.Key(f->name().c_str());
    if (f->is_map()) {
      w.StartObject();
      const pb::FieldDescriptor* value = f->message_type()->FindFieldByName("value");
      for (int j = 0; j < r->FieldSize(m, f); ++j) {
        const pb::Message& entry = r->GetRepeatedMessage(m, f, j);
        std::string key = map_key(entry);
        w.Key(key.c_str(), static_cast<rapidjson::SizeType>(key.size()));
        write_scalar(w, entry, value, -1);
      }
      w.EndObject();
    } else if (f->is_repeated()) {
      w.StartArray();
      for (int j = 0; j < r->FieldSize(m, f); ++j) write_scalar(w, m, f, j);
      w.EndArray();
    } else {
      write_scalar(w, m, f, -1);
    }
  }
  w.EndObject();
}

}  // namespace

std::string message_to_json(const pb::Message& message) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  write_message(w, message);
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace kiln::server
