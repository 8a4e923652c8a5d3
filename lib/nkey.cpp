// SPDX-License-Identifier: Apache-2.0
// NKey encoding (github.com/nats-io/nkeys): base32 (RFC 4648, no padding) of a prefix, the raw
// key and a CRC-16 (XModem, little endian). A seed's first two bytes hold the seed prefix and
// the key type (user: 'U'); its 32 raw bytes are an Ed25519 private key, whose public key
// OpenSSL's libcrypto derives.
#include "nkey.hpp"

#include <kvelect/error.hpp>

#if defined(KVELECT_HAVE_LIBCRYPTO)
#include <openssl/evp.h>
#endif

#include <array>
#include <cstdint>
#include <vector>

namespace kvelect::detail {
namespace {

constexpr std::uint8_t kPrefixSeed = 18 << 3; // 'S'
constexpr std::uint8_t kPrefixUser = 20 << 3; // 'U'
constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

std::uint16_t crc16(const std::uint8_t* data, std::size_t size) {
  std::uint16_t crc = 0;
  for (std::size_t i = 0; i < size; ++i) {
    crc ^= static_cast<std::uint16_t>(data[i]) << 8;
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<std::uint16_t>(crc << 1);
  }
  return crc;
}

std::optional<std::vector<std::uint8_t>> base32_decode(std::string_view text) {
  std::vector<std::uint8_t> out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    const auto at = kAlphabet.find(c);
    if (at == std::string_view::npos)
      return std::nullopt;
    buffer = (buffer << 5) | static_cast<std::uint32_t>(at);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>(buffer >> bits));
      buffer &= (1U << bits) - 1;
    }
  }
  return out;
}

std::string base32_encode(const std::vector<std::uint8_t>& data) {
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (std::uint8_t byte : data) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += kAlphabet[(buffer >> bits) & 31];
    }
    buffer &= (1U << bits) - 1;
  }
  if (bits > 0)
    out += kAlphabet[(buffer << (5 - bits)) & 31];
  return out;
}

// The 32 raw bytes of a user seed, or nullopt.
std::optional<std::array<std::uint8_t, 32>> decode_user_seed(std::string_view seed) {
  const auto raw = base32_decode(seed);
  if (!raw || raw->size() != 36)
    return std::nullopt;
  const auto crc = static_cast<std::uint16_t>((*raw)[34] | ((*raw)[35] << 8));
  if (crc16(raw->data(), 34) != crc)
    return std::nullopt;
  const std::uint8_t prefix = (*raw)[0] & 248;
  const auto type = static_cast<std::uint8_t>((((*raw)[0] & 7) << 5) | (((*raw)[1] & 248) >> 3));
  if (prefix != kPrefixSeed || type != kPrefixUser)
    return std::nullopt;
  std::array<std::uint8_t, 32> key{};
  std::copy(raw->begin() + 2, raw->begin() + 34, key.begin());
  return key;
}

} // namespace

std::optional<std::string> find_user_seed(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t start = text.find_first_not_of(" \t\r\n", i);
    if (start == std::string_view::npos)
      break;
    std::size_t end = text.find_first_of(" \t\r\n", start);
    if (end == std::string_view::npos)
      end = text.size();
    const std::string_view word = text.substr(start, end - start);
    if (word.size() > 2 && word[0] == 'S' && word[1] == 'U' && decode_user_seed(word))
      return std::string(word);
    i = end;
  }
  return std::nullopt;
}

std::string user_public_key(std::string_view seed) {
  const auto key = decode_user_seed(seed);
  if (!key)
    throw Error(Errc::invalid_argument, "not a valid user NKey seed");
#if defined(KVELECT_HAVE_LIBCRYPTO)
  EVP_PKEY* pkey =
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, key->data(), key->size());
  std::vector<std::uint8_t> encoded(1 + 32 + 2);
  std::size_t size = 32;
  const bool ok =
      pkey != nullptr && EVP_PKEY_get_raw_public_key(pkey, encoded.data() + 1, &size) == 1;
  EVP_PKEY_free(pkey);
  if (!ok || size != 32)
    throw Error(Errc::nats_error, "cannot derive the public key of the NKey seed");
  encoded[0] = kPrefixUser;
  const std::uint16_t crc = crc16(encoded.data(), 33);
  encoded[33] = static_cast<std::uint8_t>(crc & 0xff);
  encoded[34] = static_cast<std::uint8_t>(crc >> 8);
  return base32_encode(encoded);
#else
  throw Error(Errc::invalid_option,
              "NKey seed files need kvelect built with OpenSSL's libcrypto (libssl-dev)");
#endif
}

} // namespace kvelect::detail
