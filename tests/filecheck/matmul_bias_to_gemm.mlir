// RUN: nnc-opt --split-input-file %s -p matmul-bias-to-gemm | filecheck %s

// Rank-3 Linear + gelu: a is flattened to (2, 3), gemm takes the bias as c, gelu is sunk
// past the reshape back (so fuse-activation can put it in the gemm epilogue).
// CHECK-LABEL: func.func @main
// CHECK:         %[[A:.*]] = "nn.reshape"(%0) <{shape = array<i64: 2, 3>}>
// CHECK-NEXT:    %[[C:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [4], "0x0000003F0000003F0000003F0000003F">}>
// CHECK-NEXT:    %[[G:.*]] = "nn.gemm"(%[[A]], %1, %[[C]])
// CHECK-SAME:    beta = 1.000000e+00 : f64, activation = "none"
// CHECK-NEXT:    %[[R:.*]] = "nn.gelu"(%[[G]]) : (tensor<2x4xf32>) -> tensor<2x4xf32>
// CHECK-NEXT:    %[[Y:.*]] = "nn.reshape"(%[[R]]) <{shape = array<i64: 1, 2, 4>}>
// CHECK-NEXT:    func.return %[[Y]]

builtin.module {
  func.func @main(%0: tensor<1x2x3xf32>) -> tensor<1x2x4xf32> attributes {nn.input_names = ["a"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [3, 4], "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">}> : () -> tensor<3x4xf32>
    %2 = "nn.matmul"(%0, %1) : (tensor<1x2x3xf32>, tensor<3x4xf32>) -> tensor<1x2x4xf32>
    %3 = "nn.constant"() <{value = #nn.weight<"f32", [4], "0x0000003F0000003F0000003F0000003F">}> : () -> tensor<4xf32>
    %4 = "nn.add"(%2, %3) : (tensor<1x2x4xf32>, tensor<4xf32>) -> tensor<1x2x4xf32>
    %5 = "nn.gelu"(%4) : (tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
    func.return %5 : tensor<1x2x4xf32>
  }
}


// -----

// Rank-2, bias (1, 4) on the left: gemm with c of shape (4), no reshapes; relu stays for
// fuse-activation.
// CHECK-LABEL: func.func @main
// CHECK-NOT:     "nn.reshape"
// CHECK:         %[[C:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [4], "0x0000003F0000003F0000003F0000003F">}>
// CHECK-NEXT:    %[[G:.*]] = "nn.gemm"(%0, %{{[0-9]+}}, %[[C]])
// CHECK-NEXT:    %[[R:.*]] = "nn.relu"(%[[G]])
// CHECK-NEXT:    func.return %[[R]]

builtin.module {
  func.func @main(%0: tensor<2x3xf32>) -> tensor<2x4xf32> attributes {nn.input_names = ["a"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [1, 4], "0x0000003F0000003F0000003F0000003F">}> : () -> tensor<1x4xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [3, 4], "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">}> : () -> tensor<3x4xf32>
    %3 = "nn.matmul"(%0, %2) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
    %4 = "nn.add"(%1, %3) : (tensor<1x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
    %5 = "nn.relu"(%4) : (tensor<2x4xf32>) -> tensor<2x4xf32>
    func.return %5 : tensor<2x4xf32>
  }
}


// -----

// The bias is a model input, not a constant: unchanged.
// CHECK-LABEL: func.func @main
// CHECK:         "nn.matmul"
// CHECK-NEXT:    "nn.add"
// CHECK-NOT:     "nn.gemm"

builtin.module {
  func.func @main(%0: tensor<1x2x3xf32>, %1: tensor<4xf32>) -> tensor<1x2x4xf32> attributes {nn.input_names = ["a", "c"], nn.output_names = ["y"]} {
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [3, 4], "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">}> : () -> tensor<3x4xf32>
    %3 = "nn.matmul"(%0, %2) : (tensor<1x2x3xf32>, tensor<3x4xf32>) -> tensor<1x2x4xf32>
    %4 = "nn.add"(%3, %1) : (tensor<1x2x4xf32>, tensor<4xf32>) -> tensor<1x2x4xf32>
    func.return %4 : tensor<1x2x4xf32>
  }
}

