// trellis_tun: the one thing Node cannot do by itself for a gateway, opening a
// Linux TUN device. It opens /dev/net/tun, attaches it to a named layer-3
// interface (IFF_TUN) without the 4-byte packet-information header
// (IFF_NO_PI), and hands the file descriptor to JavaScript, which reads and
// writes whole IP packets on it with node:fs. Addresses, MTU and link state
// are set with `ip`, so nothing else lives here but one more call, detach().
//
// Why detach() exists: JavaScript reads the (blocking) descriptor with
// fs.read, which parks a libuv threadpool thread in read(2) until a packet
// comes. close(2) on the descriptor does not wake that thread (the read holds
// its own reference to the file), so the interface would outlive close() and
// the process would even hang at exit, when libuv joins its threads. The one
// thing that wakes a reader is the interface going away: the kernel then
// shuts the queue down and read(2) returns EFAULT (or EBADFD for a read that
// starts later). detach() removes the interface over rtnetlink so that close
// can wait for the reads to end before it releases the descriptor number.

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

// The kernel's interface names are at most IFNAMSIZ-1 (15) bytes.
#define MAX_NAME (IFNAMSIZ - 1)

// Throw unless `call` succeeded; the pending-exception check keeps an
// already-thrown JS exception instead of masking it with a generic one.
#define NAPI_CALL(env, call)                                                 \
  do {                                                                       \
    napi_status status_ = (call);                                            \
    if (status_ != napi_ok) {                                                \
      bool pending_ = false;                                                 \
      napi_is_exception_pending((env), &pending_);                           \
      if (!pending_) napi_throw_error((env), NULL, "trellis_tun: " #call " failed"); \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

// Throw an Error whose message is "<what>: <strerror(errno)>" and whose `code`
// is the errno name (ENOENT, EPERM, ...), like Node's own system errors.
static napi_value throw_errno(napi_env env, const char* what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  const char* code = NULL;
  switch (err) {
    case ENOENT: code = "ENOENT"; break;
    case EPERM: code = "EPERM"; break;
    case EACCES: code = "EACCES"; break;
    case EBUSY: code = "EBUSY"; break;
    case EINVAL: code = "EINVAL"; break;
    case ENODEV: code = "ENODEV"; break;
    case EBADF: code = "EBADF"; break;
    case EMFILE: code = "EMFILE"; break;
    case ENFILE: code = "ENFILE"; break;
    case ENXIO: code = "ENXIO"; break;
    case EBADFD: code = "EBADFD"; break;
    case ETIMEDOUT: code = "ETIMEDOUT"; break;
    case EAGAIN: code = "EAGAIN"; break;
    default: code = NULL; break;
  }
  napi_value error, message, errno_value;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
      napi_create_error(env, NULL, message, &error) != napi_ok) {
    napi_throw_error(env, code, msg);
    return NULL;
  }
  if (code != NULL) {
    napi_value code_value;
    if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value) == napi_ok) {
      napi_set_named_property(env, error, "code", code_value);
    }
  }
  if (napi_create_int32(env, err, &errno_value) == napi_ok) {
    napi_set_named_property(env, error, "errno", errno_value);
  }
  napi_throw(env, error);
  return NULL;
}

static int valid_name(const char* name, size_t len) {
  if (len < 1 || len > MAX_NAME) return 0;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '.' || c == '-';
    if (!ok) return 0;
  }
  return 1;
}

// Remove the interface with index `ifindex` (RTM_DELLINK) in the calling
// thread's network namespace. Returns 0 or an errno value.
static int delete_link(int ifindex) {
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s < 0) return errno;
  // rtnetlink answers at once; the timeout only keeps a wedged kernel from
  // blocking the JavaScript thread for good.
  struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  struct {
    struct nlmsghdr nh;
    struct ifinfomsg ifi;
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
  req.nh.nlmsg_type = RTM_DELLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.nh.nlmsg_seq = 1;
  req.ifi.ifi_family = AF_UNSPEC;
  req.ifi.ifi_index = ifindex;
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  if (sendto(s, &req, req.nh.nlmsg_len, 0, (struct sockaddr*)&kernel, sizeof kernel) < 0) {
    int err = errno;
    close(s);
    return err;
  }

  char buf[4096];
  for (;;) {
    ssize_t n = recv(s, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno == EAGAIN || errno == EWOULDBLOCK ? ETIMEDOUT : errno;
      close(s);
      return err;
    }
    int len = (int)n;
    for (struct nlmsghdr* nh = (struct nlmsghdr*)buf; NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
      if (nh->nlmsg_seq != 1 || nh->nlmsg_type != NLMSG_ERROR) continue;
      struct nlmsgerr* e = (struct nlmsgerr*)NLMSG_DATA(nh);
      close(s);
      return -e->error;  // 0 is the acknowledgement
    }
  }
}

// open(name: string): { fd: number, name: string, ifindex: number }
static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype type = napi_undefined;
  if (argc >= 1) NAPI_CALL(env, napi_typeof(env, argv[0], &type));
  if (type != napi_string) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "open(name): name must be a string");
    return NULL;
  }
  // One byte more than the longest valid name, so that a too-long name is
  // seen as too long rather than silently truncated.
  char name[MAX_NAME + 2];
  size_t len = 0;
  NAPI_CALL(env, napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len));
  if (!valid_name(name, len)) {
    napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE",
                           "open(name): name must be 1-15 characters of [A-Za-z0-9_.-]");
    return NULL;
  }

  // O_CLOEXEC so that child processes (ip, wg, ...) never inherit the device:
  // a leaked descriptor would keep the interface alive after close().
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open /dev/net/tun", errno);

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, len);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    char what[64];
    snprintf(what, sizeof what, "TUNSETIFF %s", name);
    return throw_errno(env, what, err);
  }

  // Taken now, while the name surely means our device, so that detach() can
  // tell later whether the name still does.
  ifr.ifr_name[IFNAMSIZ - 1] = '\0';
  unsigned int ifindex = if_nametoindex(ifr.ifr_name);
  if (ifindex == 0) {
    int err = errno;
    close(fd);
    char what[64];
    snprintf(what, sizeof what, "if_nametoindex %s", ifr.ifr_name);
    return throw_errno(env, what, err);
  }

  napi_value result, fd_value, name_value, index_value;
  if (napi_create_object(env, &result) != napi_ok || napi_create_int32(env, fd, &fd_value) != napi_ok ||
      napi_create_uint32(env, ifindex, &index_value) != napi_ok ||
      napi_set_named_property(env, result, "ifindex", index_value) != napi_ok ||
      napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &name_value) != napi_ok ||
      napi_set_named_property(env, result, "fd", fd_value) != napi_ok ||
      napi_set_named_property(env, result, "name", name_value) != napi_ok) {
    // Do not leak the device when the result cannot be handed over.
    close(fd);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, NULL, "trellis_tun: could not build the result object");
    return NULL;
  }
  return result;
}

// Read argument i as a non-negative int32, or throw and return -1.
static int32_t arg_index(napi_env env, napi_value* argv, size_t argc, size_t i, const char* what) {
  napi_valuetype type = napi_undefined;
  if (i < argc && napi_typeof(env, argv[i], &type) != napi_ok) return -1;
  int32_t v = -1;
  if (type != napi_number || napi_get_value_int32(env, argv[i], &v) != napi_ok || v < 0) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", what);
    return -1;
  }
  return v;
}

// detach(fd: number, ifindex: number): boolean
// Remove the interface of `fd`, which wakes every read blocked on it. Returns
// false, removing nothing, when the interface is already gone or `ifindex`
// no longer names it in this namespace (it was renamed or moved elsewhere):
// never remove a device that may not be ours.
static napi_value tun_detach(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = arg_index(env, argv, argc, 0, "detach(fd, ifindex): fd must be a non-negative integer");
  if (fd < 0) return NULL;
  int32_t ifindex = arg_index(env, argv, argc, 1, "detach(fd, ifindex): ifindex must be a positive integer");
  if (ifindex < 0) return NULL;

  napi_value result;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
    // EBADFD: the interface was removed already (e.g. `ip link del`).
    if (errno == EBADFD) {
      NAPI_CALL(env, napi_get_boolean(env, false, &result));
      return result;
    }
    return throw_errno(env, "TUNGETIFF", errno);
  }
  char current[IF_NAMESIZE];
  if (if_indextoname((unsigned int)ifindex, current) == NULL ||
      strncmp(current, ifr.ifr_name, IF_NAMESIZE) != 0) {
    NAPI_CALL(env, napi_get_boolean(env, false, &result));
    return result;
  }
  int err = delete_link(ifindex);
  if (err == ENODEV) {
    NAPI_CALL(env, napi_get_boolean(env, false, &result));
    return result;
  }
  if (err != 0) {
    char what[64];
    snprintf(what, sizeof what, "RTM_DELLINK %s", current);
    return throw_errno(env, what, err);
  }
  NAPI_CALL(env, napi_get_boolean(env, true, &result));
  return result;
}

// close(fd: number): void
static napi_value tun_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype type = napi_undefined;
  if (argc >= 1) NAPI_CALL(env, napi_typeof(env, argv[0], &type));
  if (type != napi_number) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "close(fd): fd must be a number");
    return NULL;
  }
  int32_t fd = -1;
  NAPI_CALL(env, napi_get_value_int32(env, argv[0], &fd));
  if (fd < 0) {
    napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "close(fd): fd must be >= 0");
    return NULL;
  }
  // No retry on EINTR: on Linux the descriptor is released even then, and a
  // retry could close a descriptor another thread has just been given.
  if (close(fd) < 0 && errno != EINTR) {
    char what[32];
    snprintf(what, sizeof what, "close %d", fd);
    return throw_errno(env, what, errno);
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, tun_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"detach", NULL, tun_detach, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, tun_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
