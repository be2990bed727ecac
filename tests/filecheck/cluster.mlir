// RUN: nnc-opt --split-input-file %s -p 'cluster{bits=1}' | filecheck %s

// Non-zeros (1, 1.5, 4, 4.5, 5, 1.25) -> 2 centroids 1.25 (0x3FA00000) and 4.5 (0x40900000);
// the zeros stay zero; the codebook is recorded.

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[W:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [2, 4], "0x0000A03F0000A03F000000000000904000009040000090400000A03F00000000">}> {nn.codebook = #nn.weight<"f32", [2], "0x0000A03F00009040">}
// CHECK-NEXT:    "nn.gemm"(%0, %[[W]])

builtin.module {
  func.func @main(%0: tensor<1x4xf32>) -> tensor<1x2xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2, 4], "0x0000803F0000C03F0000000000008040000090400000A0400000A03F00000000">}> : () -> tensor<2x4xf32>
    %2 = "nn.gemm"(%0, %1) <{trans_a = 0 : i64, trans_b = 1 : i64, alpha = 1.000000e+00 : f64, beta = 1.000000e+00 : f64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64}> : (tensor<1x4xf32>, tensor<2x4xf32>) -> tensor<1x2xf32>
    func.return %2 : tensor<1x2xf32>
  }
}

// -----

// Only 2 non-zero weights (<= 2^bits): nothing to share, unchanged.

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    "nn.constant"() <{value = #nn.weight<"f32", [2, 2], "0x0000803F00000000000000000000A040">}>
// CHECK-NOT:     nn.codebook

builtin.module {
  func.func @main(%0: tensor<1x2xf32>) -> tensor<1x2xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2, 2], "0x0000803F00000000000000000000A040">}> : () -> tensor<2x2xf32>
    %2 = "nn.gemm"(%0, %1) <{trans_a = 0 : i64, trans_b = 1 : i64, alpha = 1.000000e+00 : f64, beta = 1.000000e+00 : f64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64}> : (tensor<1x2xf32>, tensor<2x2xf32>) -> tensor<1x2xf32>
    func.return %2 : tensor<1x2xf32>
  }
}
