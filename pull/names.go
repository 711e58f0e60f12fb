package pull

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"

	"github.com/crashkey/crashkey/internal/termsafe"
)

// nameMax is the longest file name Linux accepts (NAME_MAX, in bytes). An NTFS name holds up
// to 255 UTF-16 units, which is up to 765 bytes of UTF-8.
const nameMax = 255

// maxExt is the longest extension kept when a name must be shortened.
const maxExt = 16

// outputName maps a file name from the image to a name that is safe in the output
// directory. Names that are already safe are kept exactly. Otherwise every unsafe character
// (a '/', a '\', a control character, a bidi override, invalid UTF-8) becomes '_', a name of
// only dots becomes "file", and a name longer than 255 bytes keeps its start and its
// extension, and a leading '.' (a hidden file) becomes '_'; such a name then ends in "~" and eight hex digits of the SHA-256 of the
// original name (before the extension), so that two different names never map to the same
// output and the same name always maps to the same output. why says what was changed ("" when
// nothing was).
func outputName(name string) (out, why string) {
	var reasons []string
	safe := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < 0x20 || r == 0x7f || r == utf8.RuneError || termsafe.String(string(r)) != string(r) {
			return '_'
		}
		return r
	}, name)
	if !utf8.ValidString(name) {
		// strings.Map replaced invalid bytes with RuneError, mapped to '_' above.
		safe = strings.ToValidUTF8(safe, "_")
	}
	if safe != name {
		reasons = append(reasons, "it has characters that are unsafe in a local file name ('/', '\\', control or bidi characters, invalid UTF-8)")
	}
	if strings.Trim(safe, ".") == "" {
		safe = "file" + safe
		reasons = append(reasons, "it is empty or only dots")
	} else if safe[0] == '.' {
		safe = "_" + safe[1:]
		reasons = append(reasons, "it starts with '.' (a hidden file)")
	}
	if len(safe) > nameMax {
		reasons = append(reasons, "it is longer than the 255 bytes a Linux file name may have")
	}
	if len(reasons) == 0 {
		return name, ""
	}
	return tagged(safe, name), "the name was changed because " + strings.Join(reasons, " and ")
}

// tagged returns safe shortened to fit nameMax with "~" + 8 hex digits of the hash of
// original inserted before the extension.
func tagged(safe, original string) string {
	sum := sha256.Sum256([]byte(original))
	tag := "~" + hex.EncodeToString(sum[:4])
	stem, ext := safe, ""
	if i := strings.LastIndexByte(safe, '.'); i > 0 && len(safe)-i <= maxExt {
		stem, ext = safe[:i], safe[i:]
	}
	room := nameMax - len(tag) - len(ext)
	if len(stem) > room {
		stem = stem[:room]
		for len(stem) > 0 && !utf8.ValidString(stem) { // do not cut a character in two
			stem = stem[:len(stem)-1]
		}
	}
	return stem + tag + ext
}
