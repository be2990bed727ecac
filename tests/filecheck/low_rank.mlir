// RUN: nnc-opt --split-input-file %s -p 'low-rank{ratio=0.25}' | filecheck %s
// RUN: nnc-opt --split-input-file %s -p 'low-rank{energy=0.99}' | filecheck %s

// W = u u^T / 8 (rank 1, 8x8): ratio 0.25 gives rank floor(0.25*64/16) = 1, energy 0.99
// also rank 1: gemm(x, V (1x8)) then gemm(t, U (8x1), bias). 16 instead of 64 weights.

// CHECK-LABEL: func.func @main
// CHECK:         %[[V:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [1, 8]
// CHECK-NEXT:    %[[U:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [8, 1]
// CHECK-NEXT:    %[[T:.*]] = "nn.gemm"(%0, %[[V]]) {{.*}} {nn.rank = 1 : i64} : {{.*}} -> tensor<1x1xf32>
// CHECK-NEXT:    %[[Y:.*]] = "nn.gemm"(%[[T]], %[[U]], %{{.*}}) {{.*}} {nn.rank = 1 : i64} : {{.*}} -> tensor<1x8xf32>
// CHECK-NEXT:    func.return %[[Y]]

builtin.module {
  func.func @main(%0: tensor<1x8xf32>) -> tensor<1x8xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [8, 8], "0x0000003E0000803E0000C03E0000003F0000203F0000403F0000603F0000803F0000803E0000003F0000403F0000803F0000A03F0000C03F0000E03F000000400000C03E0000403F0000903F0000C03F0000F03F0000104000002840000040400000003F0000803F0000C03F00000040000020400000404000006040000080400000203F0000A03F0000F03F00002040000048400000704000008C400000A0400000403F0000C03F000010400000404000007040000090400000A8400000C0400000603F0000E03F000028400000604000008C400000A8400000C4400000E0400000803F0000004000004040000080400000A0400000C0400000E04000000041">}> : () -> tensor<8x8xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [8], "0x0000000000000000000000000000000000000000000000000000000000000000">}> : () -> tensor<8xf32>
    %3 = "nn.gemm"(%0, %1, %2) <{trans_a = 0 : i64, trans_b = 1 : i64, alpha = 1.000000e+00 : f64, beta = 1.000000e+00 : f64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64}> : (tensor<1x8xf32>, tensor<8x8xf32>, tensor<8xf32>) -> tensor<1x8xf32>
    func.return %3 : tensor<1x8xf32>
  }
}

// -----

// 2x2 full-rank weight: a factorization cannot reduce MACs: unchanged.

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    "nn.constant"() <{value = #nn.weight<"f32", [2, 2]
// CHECK-NEXT:    "nn.gemm"
// CHECK-NOT:     nn.rank

builtin.module {
  func.func @main(%0: tensor<1x2xf32>) -> tensor<1x2xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [2, 2], "0x0000803F000000400000404000008040">}> : () -> tensor<2x2xf32>
    %2 = "nn.gemm"(%0, %1) <{trans_a = 0 : i64, trans_b = 1 : i64, alpha = 1.000000e+00 : f64, beta = 1.000000e+00 : f64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64}> : (tensor<1x2xf32>, tensor<2x2xf32>) -> tensor<1x2xf32>
    func.return %2 : tensor<1x2xf32>
  }
}
