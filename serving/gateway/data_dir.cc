#include "serving/gateway/data_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "serving/gateway/admin_service.h"

namespace atrium::gateway {
namespace {

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return FailedPrecondition(path + " exists and is not a directory");
    }
    return OkStatus();
  }
  return FailedPrecondition(StrFormat("cannot create the directory %s: %s", path.c_str(), std::strerror(errno)));
}

// Writes `text` to a new file only this user can read.
Status WritePrivateFile(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return FailedPrecondition(StrFormat("cannot write %s: %s", path.c_str(), std::strerror(errno)));
  // O_CREAT's mode does not apply to a file that already existed.
  Status s;
  if (::fchmod(fd, 0600) != 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      ::fsync(fd) != 0) {
    s = FailedPrecondition(StrFormat("cannot write %s: %s", path.c_str(), std::strerror(errno)));
  }
  ::close(fd);
  return s;
}

}  // namespace

StatusOr<DataDir> OpenDataDir(const std::string& path) {
  DataDir d;
  d.path = std::filesystem::absolute(path).lexically_normal().string();
  RETURN_IF_ERROR(MakeDir(d.path));
  d.log_dir = d.path + "/logs";
  RETURN_IF_ERROR(MakeDir(d.log_dir));
  d.packed_dir = d.path + "/packed";
  RETURN_IF_ERROR(MakeDir(d.packed_dir));
  d.admin_key_file = d.path + "/admin.key";
  ASSIGN_OR_RETURN(d.store, SqliteStore::Open(d.path + "/" + kDatabaseFile));
  ASSIGN_OR_RETURN(TenantPage page, d.store->ListTenants(1, ""));
  if (!page.tenants.empty()) return d;

  RETURN_IF_ERROR(d.store->CreateTenant(kAdminTenant, "Operator").status());
  ASSIGN_OR_RETURN(IssuedKey key, d.store->IssueKey(kAdminTenant, /*admin=*/true));
  RETURN_IF_ERROR(WritePrivateFile(d.admin_key_file, key.secret + "\n"));
  d.new_admin_key = std::move(key);
  return d;
}

}  // namespace atrium::gateway
