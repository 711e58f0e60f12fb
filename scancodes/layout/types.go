package layout

// table is one generated layout (tables_gen.go).
type table struct {
	name, desc string
	chars      [4]string
	dead       [4]uint64
}
