// Parse and verify errors name the file position and go to stdout under --verify-diagnostics.
// RUN: nnc-opt --split-input-file --verify-diagnostics %s -p dce | filecheck %s

// CHECK: error: {{.*}}parse_errors.mlir:12:{{[0-9]+}}: Operation nn.no_such_op is not registered
// CHECK: // -----
// CHECK: error: {{.*}}parse_errors.mlir: IR does not verify: nn.relu: result types
// CHECK: // -----
// CHECK: error: {{.*}}parse_errors.mlir:30:{{[0-9]+}}: Operation nn.bad is not registered

builtin.module {
  func.func @main(%0: tensor<2xf32>) -> tensor<2xf32> {
    %1 = "nn.no_such_op"(%0) : (tensor<2xf32>) -> tensor<2xf32>
    func.return %1 : tensor<2xf32>
  }
}

// -----

builtin.module {
  func.func @main(%0: tensor<2xf32>) -> tensor<3xf32> {
    %1 = "nn.relu"(%0) : (tensor<2xf32>) -> tensor<3xf32>
    func.return %1 : tensor<3xf32>
  }
}

// -----

builtin.module {
  func.func @main(%0: tensor<2xf32>) -> tensor<2xf32> {
    %1 = "nn.bad"(%0) : (tensor<2xf32>) -> tensor<2xf32>
    func.return %1 : tensor<2xf32>
  }
}
