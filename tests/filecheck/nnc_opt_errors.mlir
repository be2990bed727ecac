// User errors from the nnc-opt driver are one line, `nnc-opt: error: ...`, exit status 1.
// RUN: not nnc-opt %s -p no-such-pass 2>&1 | filecheck %s --check-prefix=PASS
// RUN: not nnc-opt %s -p 'specialize-shapes{batch=two}' 2>&1 | filecheck %s --check-prefix=TYPE
// RUN: not nnc-opt %s -p 'specialize-shapes{size=2}' 2>&1 | filecheck %s --check-prefix=OPTION
// RUN: not nnc-opt %s -p 'specialize-shapes{batch=0}' 2>&1 | filecheck %s --check-prefix=VALUE
// RUN: not nnc-opt %s -p 'dce{' 2>&1 | filecheck %s --check-prefix=SYNTAX
// RUN: not nnc-opt %s.missing -p dce 2>&1 | filecheck %s --check-prefix=MISSING
// RUN: nnc-opt %s -p 'dce,cse' | filecheck %s --check-prefix=OK

// PASS:      nnc-opt: error: unknown pass 'no-such-pass' (known: {{.*}}canonicalize, {{.*}}dce, {{.*}}winograd-conv{{.*}})
// PASS-NOT:  Traceback
// TYPE:      nnc-opt: error: pass 'specialize-shapes': option 'batch' expects int, got 'two'
// OPTION:    nnc-opt: error: pass 'specialize-shapes' has no option 'size' (options: batch)
// VALUE:     nnc-opt: error: specialize-shapes: batch must be >= 1, got 0
// SYNTAX:    nnc-opt: error: bad pass pipeline 'dce{':
// MISSING:   nnc-opt: error: cannot read '{{.*}}.missing'
// OK:        func.func @main(%0: tensor<2xf32>) -> tensor<2xf32>

builtin.module {
  func.func @main(%0: tensor<2xf32>) -> tensor<2xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.relu"(%0) : (tensor<2xf32>) -> tensor<2xf32>
    func.return %1 : tensor<2xf32>
  }
}
