// Tests of the string ops: StringConcat, StringSplit, StringNormalizer,
// RegexFullMatch, TfIdfVectorizer, and the UTF-8 helpers behind them.
// Expected values follow Python's str methods (ONNX's reference uses them).
#include <gtest/gtest.h>

#include "ops/op_test_util.h"
#include "ops/string_util.h"

namespace kiln::test {
namespace {

using ir::Attribute;

Attribute strings_attr(const std::string& name, std::vector<std::string> v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::kStrings;
  a.strings = std::move(v);
  return a;
}

Tensor run1(OpTest& t) {
  auto r = t.run();
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? (*r)[0] : Tensor();
}

void expect_strings(const Tensor& t, const Dims& dims, const std::vector<std::string>& v) {
  EXPECT_EQ(t.dtype(), DataType::kString);
  EXPECT_EQ(dims_to_string(t.dims()), dims_to_string(dims));
  EXPECT_EQ(string_values(t), v);
}

// ---- helpers -----------------------------------------------------------------------

TEST(StringUtil, SplitWhitespaceLikePython) {
  using V = std::vector<std::string>;
  EXPECT_EQ(ops::split_whitespace("  a b\t\nc  ", -1), (V{"a", "b", "c"}));
  EXPECT_EQ(ops::split_whitespace("", -1), V{});
  EXPECT_EQ(ops::split_whitespace("   ", -1), V{});
  // " a b  c ".split(None, 1) == ['a', 'b  c ']
  EXPECT_EQ(ops::split_whitespace(" a b  c ", 1), (V{"a", "b  c "}));
  EXPECT_EQ(ops::split_whitespace(" a b ", 0), (V{"a b "}));
  // U+3000 (ideographic space) and U+00A0 are whitespace; U+00E9 is not.
  EXPECT_EQ(ops::split_whitespace("x\u3000y\u00a0\u00e9", -1), (V{"x", "y", "\u00e9"}));
  // Invalid UTF-8 bytes are kept as part of a field.
  EXPECT_EQ(ops::split_whitespace("\xff\xfe z", -1), (V{"\xff\xfe", "z"}));
}

TEST(StringUtil, SplitOnSeparator) {
  using V = std::vector<std::string>;
  EXPECT_EQ(ops::split_on("a,,b", ",", -1), (V{"a", "", "b"}));
  EXPECT_EQ(ops::split_on("", ",", -1), (V{""}));
  EXPECT_EQ(ops::split_on("a--b--c", "--", 1), (V{"a", "b--c"}));
  EXPECT_EQ(ops::split_on(",a,", ",", -1), (V{"", "a", ""}));
}

TEST(StringUtil, CaseMapping) {
  EXPECT_EQ(ops::utf8_lower("MonDAY 123"), "monday 123");
  EXPECT_EQ(ops::utf8_upper("monday"), "MONDAY");
  EXPECT_EQ(ops::utf8_lower("\u00c9T\u00c9 \u0152"), "\u00e9t\u00e9 \u0153");  // ÉTÉ Œ -> été œ
  EXPECT_EQ(ops::utf8_upper("stra\u00dfe"), "STRASSE");
  EXPECT_EQ(ops::utf8_upper("\u03b1\u03b2\u03c2"), "\u0391\u0392\u03a3");        // αβς -> ΑΒΣ
  EXPECT_EQ(ops::utf8_lower("\u041f\u0420\u0418\u0412\u0415\u0422"), "\u043f\u0440\u0438\u0432\u0435\u0442");
  EXPECT_EQ(ops::utf8_upper("\u4e2d\u6587"), "\u4e2d\u6587");
  EXPECT_EQ(ops::utf8_upper("a\xc3"), "A\xc3");  // a truncated sequence is kept
}

// ---- StringConcat ------------------------------------------------------------------

TEST(StringConcat, BroadcastsAndKeepsUtf8) {
  OpTest t("StringConcat", 20);
  t.input("x", strings({2, 1}, {"a", "\u00e9"})).input("y", strings({3}, {"1", "", "\u4e2d"}));
  expect_strings(run1(t), {2, 3}, {"a1", "a", "a\u4e2d", "\u00e91", "\u00e9", "\u00e9\u4e2d"});
}

TEST(StringConcat, ZeroSizedAndScalar) {
  OpTest t("StringConcat", 20);
  t.input("x", strings({0, 2}, {})).input("y", strings({}, {"z"}));
  expect_strings(run1(t), {0, 2}, {});
}

TEST(StringConcat, Errors) {
  OpTest t("StringConcat", 20);
  t.input("x", strings({2}, {"a", "b"})).input("y", strings({3}, {"a", "b", "c"}));
  expect_error(t.run(), "broadcast");
  OpTest u("StringConcat", 20);
  u.input("x", strings({1}, {"a"})).input("y", floats({1}, {1}));
  expect_error(u.run(), "must be a string tensor");
}

TEST(StringConcat, Infer) {
  EXPECT_EQ(InferTest("StringConcat", 20).tensor(DataType::kString, sym_shape({Dim::sym("N"), 1}))
                .tensor(DataType::kString, sym_shape({4})).str(),
            "string[N,4]");
}

// ---- StringSplit -----------------------------------------------------------------

TEST(StringSplit, DelimiterPadsAndCounts) {
  OpTest t("StringSplit", 20);
  t.input("x", strings({2, 2}, {"a,b", "", ",,", "x"})).attr(Attribute::make_string("delimiter", ",")).outputs(2);
  auto r = t.run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_strings((*r)[0], {2, 2, 3}, {"a", "b", "", "", "", "", "", "", "", "x", "", ""});
  expect_near((*r)[1], {2, 2}, {2, 1, 3, 1});
}

TEST(StringSplit, WhitespaceAndMaxsplit) {
  OpTest t("StringSplit", 20);
  t.input("x", strings({3}, {"  hello  world  ", "a b c d", ""})).attr(Attribute::make_int("maxsplit", 2)).outputs(2);
  auto r = t.run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_strings((*r)[0], {3, 3}, {"hello", "world", "", "a", "b", "c d", "", "", ""});
  expect_near((*r)[1], {3}, {2, 3, 0});
}

TEST(StringSplit, EmptyDelimiterMeansWhitespaceAndEmptyInput) {
  OpTest t("StringSplit", 20);
  t.input("x", strings({0}, {})).attr(Attribute::make_string("delimiter", "")).outputs(2);
  auto r = t.run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_strings((*r)[0], {0, 0}, {});
  EXPECT_EQ(dims_to_string((*r)[1].dims()), "[0]");
}

TEST(StringSplit, ErrorsAndInfer) {
  OpTest t("StringSplit", 20);
  t.input("x", int64s({1}, {1}));
  expect_error(t.run(), "must be a string tensor");
  auto types = InferTest("StringSplit", 20).tensor(DataType::kString, sym_shape({Dim::sym("N")})).outputs(2).run();
  ASSERT_TRUE(types.is_ok());
  EXPECT_EQ((*types)[0].to_string(), "string[N,?]");
  EXPECT_EQ((*types)[1].to_string(), "int64[N]");
}

// ---- StringNormalizer -------------------------------------------------------------

TEST(StringNormalizer, StopwordsCaseInsensitiveThenUpper) {
  OpTest t("StringNormalizer", 10);
  t.input("x", strings({1, 4}, {"Monday", "tuesday", "MONDAY", "\u00e9t\u00e9"}))
      .attr(strings_attr("stopwords", {"monday"}))
      .attr(Attribute::make_string("case_change_action", "UPPER"));
  expect_strings(run1(t), {1, 2}, {"TUESDAY", "\u00c9T\u00c9"});
}

TEST(StringNormalizer, CaseSensitiveStopwordsLower) {
  OpTest t("StringNormalizer", 10);
  t.input("x", strings({3}, {"Monday", "monday", "X"}))
      .attr(strings_attr("stopwords", {"monday"}))
      .attr(Attribute::make_int("is_case_sensitive", 1))
      .attr(Attribute::make_string("case_change_action", "LOWER"));
  expect_strings(run1(t), {2}, {"monday", "x"});
}

TEST(StringNormalizer, AllRemovedGivesOneEmptyString) {
  OpTest t("StringNormalizer", 10);
  t.input("x", strings({1, 2}, {"a", "A"})).attr(strings_attr("stopwords", {"a"}));
  expect_strings(run1(t), {1, 1}, {""});
  OpTest u("StringNormalizer", 10);
  u.input("x", strings({1}, {"a"})).attr(strings_attr("stopwords", {"a"}));
  expect_strings(run1(u), {1}, {""});
}

TEST(StringNormalizer, Errors) {
  OpTest t("StringNormalizer", 10);
  t.input("x", strings({2, 2}, {"a", "b", "c", "d"}));
  expect_error(t.run(), "[C] or [1, C]");
  OpTest u("StringNormalizer", 10);
  u.input("x", strings({1}, {"a"})).attr(Attribute::make_string("case_change_action", "TITLE"));
  expect_error(u.run(), "case_change_action");
  EXPECT_EQ(InferTest("StringNormalizer", 10).tensor(DataType::kString, sym_shape({1, 5})).str(), "string[1,5]");
  EXPECT_EQ(InferTest("StringNormalizer", 10)
                .tensor(DataType::kString, sym_shape({5}))
                .attr(strings_attr("stopwords", {"a"}))
                .str(),
            "string[?]");
  EXPECT_EQ(InferTest("StringNormalizer", 10).tensor(DataType::kString, sym_shape({0})).str(), "string[1]");
  EXPECT_EQ(InferTest("StringNormalizer", 10).tensor(DataType::kString, sym_shape({3, 2})).str(),
            "error: node 'StringNormalizer_0' (StringNormalizer): input X must have shape [C] or [1, C], got [3,2]");
  OpTest empty("StringNormalizer", 10);
  empty.input("x", strings({0}, {}));
  expect_strings(run1(empty), {1}, {""});
}

// ---- RegexFullMatch ----------------------------------------------------------------

TEST(RegexFullMatch, FullMatchNotSearch) {
  OpTest t("RegexFullMatch", 20);
  t.input("x", strings({2, 2}, {"www.google.com", "www.facebook.com", "google.com", ""}))
      .attr(Attribute::make_string("pattern", R"(www\.[\w.-]+\.\bcom\b)"));
  Tensor y = run1(t);
  EXPECT_EQ(y.dtype(), DataType::kBool);
  expect_near(y, {2, 2}, {1, 1, 0, 0});
}

TEST(RegexFullMatch, Utf8AndEmptyPattern) {
  OpTest t("RegexFullMatch", 20);
  t.input("x", strings({3}, {"\u00e9", "", "ab"})).attr(Attribute::make_string("pattern", "."));
  expect_near(run1(t), {3}, {1, 0, 0});  // '.' matches one UTF-8 code point
  OpTest u("RegexFullMatch", 20);
  u.input("x", strings({2}, {"", "a"})).attr(Attribute::make_string("pattern", ""));
  expect_near(run1(u), {2}, {1, 0});
}

TEST(RegexFullMatch, Errors) {
  OpTest t("RegexFullMatch", 20);
  t.input("x", strings({1}, {"a"})).attr(Attribute::make_string("pattern", "(a"));
  expect_error(t.run(), "invalid RE2 pattern");
  OpTest u("RegexFullMatch", 20);
  u.input("x", strings({1}, {"a"}));
  expect_error(u.run(), "'pattern'");
  // Back-references are not RE2 syntax.
  OpTest v("RegexFullMatch", 20);
  v.input("x", strings({1}, {"aa"})).attr(Attribute::make_string("pattern", R"((a)\1)"));
  expect_error(v.run(), "invalid RE2 pattern");
  EXPECT_EQ(InferTest("RegexFullMatch", 20).tensor(DataType::kString, sym_shape({2, 3})).str(), "bool[2,3]");
}

// ---- TfIdfVectorizer ----------------------------------------------------------------

// A pool of unigrams [2, 3, 5, 4] and bigrams [5,6], [7,8], [6,7] (columns 0..6).
OpTest tfidf(const std::string& mode, int64_t min_n, int64_t max_n, int64_t skip, Tensor x) {
  OpTest t("TfIdfVectorizer", 9);
  t.input("x", std::move(x))
      .attr(Attribute::make_string("mode", mode))
      .attr(Attribute::make_int("min_gram_length", min_n))
      .attr(Attribute::make_int("max_gram_length", max_n))
      .attr(Attribute::make_int("max_skip_count", skip))
      .attr(Attribute::make_ints("ngram_counts", {0, 4}))
      .attr(Attribute::make_ints("ngram_indexes", {0, 1, 2, 3, 4, 5, 6}))
      .attr(Attribute::make_ints("pool_int64s", {2, 3, 5, 4, 5, 6, 7, 8, 6, 7}));
  return t;
}

// Expected values in these tests were computed with onnx.reference.ReferenceEvaluator
// on the same node (max lengths of 50 standing in for the huge ones below).
TEST(TfIdfVectorizer, UniAndBigramsWithSkips) {
  Tensor x = int32s({2, 6}, {1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8});
  OpTest t = tfidf("TF", 1, 2, 5, x);
  expect_near(run1(t), {2, 7}, {0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1});
  OpTest u = tfidf("TF", 2, 2, 0, x);
  expect_near(run1(u), {2, 7}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1});
}

TEST(TfIdfVectorizer, IdfAndTfIdfWeights) {
  Tensor x = int64s({6}, {2, 3, 3, 5, 6, 4});
  OpTest idf = tfidf("IDF", 1, 2, 0, x);
  idf.attr(Attribute::make_floats("weights", {1, 2, 3, 4, 5, 6, 7}));
  expect_near(run1(idf), {7}, {1, 2, 3, 4, 5, 0, 0});
  OpTest tfidf_w = tfidf("TFIDF", 1, 2, 0, x);
  tfidf_w.attr(Attribute::make_floats("weights", {1, 2, 3, 4, 5, 6, 7}));
  expect_near(run1(tfidf_w), {7}, {1, 4, 3, 4, 5, 0, 0});
  // By hand (the reference evaluator fails on IDF without weights): 1 where a unigram occurs.
  OpTest idf_plain = tfidf("IDF", 1, 1, 0, x);
  expect_near(run1(idf_plain), {7}, {1, 1, 1, 1, 0, 0, 0});
}

TEST(TfIdfVectorizer, StringPool) {
  OpTest t("TfIdfVectorizer", 9);
  t.input("x", strings({5}, {"a", "b", "a", "c", "b"}))
      .attr(Attribute::make_string("mode", "TF"))
      .attr(Attribute::make_int("min_gram_length", 1))
      .attr(Attribute::make_int("max_gram_length", 2))
      .attr(Attribute::make_int("max_skip_count", 1))
      .attr(Attribute::make_ints("ngram_counts", {0, 2}))
      .attr(Attribute::make_ints("ngram_indexes", {1, 0, 2}))
      .attr(strings_attr("pool_strings", {"a", "b", "a", "b"}));
  // "a" x2 -> column 1, "b" x2 -> column 0, bigram (a,b): skip 0 at 0..1, skip 1 at 2..4 -> 2.
  expect_near(run1(t), {3}, {2, 2, 2});
}

TEST(TfIdfVectorizer, Errors) {
  OpTest t = tfidf("TF", 1, 2, 0, strings({1}, {"a"}));
  expect_error(t.run(), "pool_int64s");
  OpTest u = tfidf("BM25", 1, 2, 0, int64s({1}, {1}));
  expect_error(u.run(), "mode must be TF, IDF or TFIDF");
  OpTest v = tfidf("TF", 2, 1, 0, int64s({1}, {1}));
  expect_error(v.run(), "min_gram_length");
  OpTest w = tfidf("TF", 1, 2, 0, int64s({1, 1, 1}, {1}));
  expect_error(w.run(), "1-D [C] or 2-D [N, C]");
  OpTest bad_counts("TfIdfVectorizer", 9);
  bad_counts.input("x", int64s({1}, {1}))
      .attr(Attribute::make_string("mode", "TF"))
      .attr(Attribute::make_int("min_gram_length", 1))
      .attr(Attribute::make_int("max_gram_length", 2))
      .attr(Attribute::make_int("max_skip_count", 0))
      .attr(Attribute::make_ints("ngram_counts", {0, 2}))
      .attr(Attribute::make_ints("ngram_indexes", {0, 1, 2}))
      .attr(Attribute::make_ints("pool_int64s", {1, 2, 3}));
  expect_error(bad_counts.run(), "not a multiple of 2");
  OpTest few_weights = tfidf("TFIDF", 1, 2, 0, int64s({1}, {1}));
  few_weights.attr(Attribute::make_floats("weights", {1, 2}));
  expect_error(few_weights.run(), "weights has 2 values");
}

TEST(TfIdfVectorizer, HugeLengthsDoNotOverflowAndInfer) {
  OpTest t = tfidf("TF", 1, int64_t{1} << 62, int64_t{1} << 62, int64s({2, 3}, {5, 6, 7, 6, 5, 7}));
  expect_near(run1(t), {2, 7}, {0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1});
  OpTest empty = tfidf("TF", 1, 2, 3, int64s({0, 4}, {}));
  expect_near(run1(empty), {0, 7}, {});
  EXPECT_EQ(InferTest("TfIdfVectorizer", 9)
                .tensor(DataType::kInt64, sym_shape({Dim::sym("B"), 9}))
                .attr(Attribute::make_string("mode", "TF"))
                .attr(Attribute::make_int("min_gram_length", 1))
                .attr(Attribute::make_int("max_gram_length", 1))
                .attr(Attribute::make_int("max_skip_count", 0))
                .attr(Attribute::make_ints("ngram_counts", {0}))
                .attr(Attribute::make_ints("ngram_indexes", {0, 4}))
                .attr(Attribute::make_ints("pool_int64s", {1, 2}))
                .str(),
            "float[B,5]");
}

}  // namespace
}  // namespace kiln::test
