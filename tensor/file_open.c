#define _GNU_SOURCE
#include "file_open.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind_of(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO (named pipe)"
         : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
         : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

FILE *file_open_regular(const char *path, const char *what, uint64_t max_bytes, uint64_t *bytes)
{
    /* O_NONBLOCK: opening a FIFO with no writer would otherwise wait here forever. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        aspo_fail(ASPO_ERR_IO, "%s %s: cannot open: %s", what, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        aspo_fail(ASPO_ERR_IO, "%s %s: cannot stat: %s", what, path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        aspo_fail(ASPO_ERR_IO, "%s %s is %s; only regular files are read", what, path,
                  kind_of(st.st_mode));
        close(fd);
        return NULL;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (max_bytes && size > max_bytes) {
        aspo_fail(ASPO_ERR_FORMAT, "%s %s: %" PRIu64 " bytes, over the limit of %" PRIu64, what,
                  path, size, max_bytes);
        close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK); /* a regular file: plain reads */
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        aspo_fail(ASPO_ERR_IO, "%s %s: %s", what, path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (bytes) *bytes = size;
    return f;
}

/* Makes a finished rename durable. Best effort: some filesystems refuse fsync on a
 * directory, and the file itself is already complete either way. */
void file_sync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if ((size_t)(slash - path) >= sizeof dir)
        return;
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}
