module github.com/eib-builder/eib

go 1.26.8

require (
	github.com/ProtonMail/go-crypto v1.5.2
	github.com/johannesboyne/gofakes3 v1.2.0
	github.com/klauspost/compress v1.20.3
	github.com/klauspost/pgzip v1.3.0
	github.com/urfave/cli/v3 v3.14.0
	golang.org/x/sys v0.35.0
)

require (
	github.com/cloudflare/circl v1.6.3 // indirect
	github.com/ryszard/goskiplist v0.0.0-20150312221310-2dfbae5fcf46 // indirect
	go.shabbyrobe.org/gocovmerge v0.0.0-20230507111327-fa4f82cfbf4d // indirect
	golang.org/x/crypto v0.41.0 // indirect
	golang.org/x/tools v0.8.0 // indirect
)
