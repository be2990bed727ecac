// RUN: nnc-opt --split-input-file %s -p 'prune{sparsity=0.5}' | filecheck %s
// RUN: nnc-opt --split-input-file %s -p 'prune{pattern="1:2"}' | filecheck %s
// RUN: nnc-opt --split-input-file %s -p 'prune{sparsity=0.5 scope=global}' | filecheck %s

// W = (1, -0.125 | 0.25, -2): the two smallest |w| (-0.125 = 0xBE000000, 0.25 = 0x3E800000)
// become 0 (in every mode: 1 of each pair of 2, and 2 of 4 globally); the mask records it.

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[W:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [2, 2], "0x0000803F0000000000000000000000C0">}> {nn.prune_mask = #nn.weight<"u8", [2, 2], "0x01000001">}
// CHECK-NEXT:    "nn.gemm"(%0, %[[W]])

builtin.module {
  func.func @main(%0: tensor<1x2xf32>) -> tensor<1x2xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2, 2], "0x0000803F000000BE0000803E000000C0">}> : () -> tensor<2x2xf32>
    %2 = "nn.gemm"(%0, %1) <{trans_a = 0 : i64, trans_b = 1 : i64, alpha = 1.000000e+00 : f64, beta = 1.000000e+00 : f64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64}> : (tensor<1x2xf32>, tensor<2x2xf32>) -> tensor<1x2xf32>
    func.return %2 : tensor<1x2xf32>
  }
}

// -----

// No weight layer: unchanged.

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[Y:.*]] = "nn.relu"(%0)
// CHECK-NEXT:    func.return %[[Y]]

builtin.module {
  func.func @main(%0: tensor<1x4xf32>) -> tensor<1x4xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.relu"(%0) : (tensor<1x4xf32>) -> tensor<1x4xf32>
    func.return %1 : tensor<1x4xf32>
  }
}
