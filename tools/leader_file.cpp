// SPDX-License-Identifier: Apache-2.0
#include "leader_file.hpp"

#include "json.hpp"
#include "timefmt.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <system_error>

namespace kvelect::cli {

std::string leader_json(const LeaderRecord& record) {
  return JsonObject()
             .add("leader", record.leader)
             .add("since", rfc3339(record.since))
             .add("token", std::uint64_t{record.token})
             .add("count", record.count)
             .str() +
         "\n";
}

void write_atomically(const std::string& path, const std::string& content) {
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  auto fail = [&](const char* what) {
    const int error = errno;
    ::unlink(temp.c_str());
    throw std::system_error(error, std::generic_category(),
                            std::string("cannot write '") + path + "' (" + what + ")");
  };
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    fail("open");
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      errno = error;
      fail("write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int error = errno;
    ::close(fd);
    errno = error;
    fail("fsync");
  }
  if (::close(fd) != 0)
    fail("close");
  if (::rename(temp.c_str(), path.c_str()) != 0)
    fail("rename");
}

bool looks_like_leader_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "re");
  if (f == nullptr)
    return false;
  char buffer[16] = {};
  const std::size_t n = std::fread(buffer, 1, sizeof buffer - 1, f);
  std::fclose(f);
  return std::string(buffer, n).rfind("{\"leader\": ", 0) == 0;
}

} // namespace kvelect::cli
