// Package fieldmask applies an update mask's paths: it copies the field a
// path names ("mixer_config.real_tasks_count") from the request's message
// onto the stored one. A path is checked against the message as it is
// followed, so an update never sets a field the message does not have.
package fieldmask

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// Copy sets the field at path in dst to its value in src, clearing it when
// src does not have it. A path that names no field, or goes on past a field
// that has no subfields, is INVALID_ARGUMENT naming update_mask.
func Copy(dst, src protoreflect.Message, path string) error {
	return copyParts(dst, src, strings.Split(path, "."), path)
}

func copyParts(dst, src protoreflect.Message, parts []string, path string) error {
	fd := dst.Descriptor().Fields().ByName(protoreflect.Name(parts[0]))
	if fd == nil {
		return serviceerror.NewInvalidArgument("update_mask", "%q names no field of %s", path, dst.Descriptor().Name())
	}
	if len(parts) == 1 {
		if src.Has(fd) {
			dst.Set(fd, src.Get(fd))
		} else {
			dst.Clear(fd)
		}
		return nil
	}
	if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() {
		return serviceerror.NewInvalidArgument("update_mask", "%q: %s has no subfields", path, fd.Name())
	}
	if !src.Has(fd) && !dst.Has(fd) {
		// Nothing to copy or clear, but the rest of the path must still
		// name a field (it used to pass unchecked here).
		return copyParts(dst.Get(fd).Message().New(), src.Get(fd).Message(), parts[1:], path)
	}
	return copyParts(dst.Mutable(fd).Message(), src.Get(fd).Message(), parts[1:], path)
}
